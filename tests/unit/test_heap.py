"""paygate/heap.py: the start-up heap frozen once, without freezing start-up garbage."""

from __future__ import annotations

import gc
import weakref

import pytest

from paygate import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_freeze_once_collects_startup_garbage_then_freezes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_frozen", False)
    garbage = _Node()
    dead = weakref.ref(garbage)
    del garbage
    kept = _Node()
    gc.disable()  # no automatic pass may collect the cycle first: freeze_once's own collect must
    try:
        heap.freeze_once()
    finally:
        gc.enable()
    assert dead() is None  # collected, not frozen for ever
    assert gc.get_freeze_count() > 0
    assert kept.me is kept
    frozen = gc.get_freeze_count()
    heap.freeze_once()  # a second app in the same process: nothing more is frozen
    assert gc.get_freeze_count() == frozen
    gc.unfreeze()  # give the test process its collector back
