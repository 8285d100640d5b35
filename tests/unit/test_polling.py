"""The one polling helper: the value once the check holds; None, or a clear failure, when it never does."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.polling import eventually, poll, wait_for


def test_wait_for_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    def check() -> str | None:
        calls.append(1)
        return "ready" if len(calls) == 3 else None

    assert wait_for(check, 5, interval=0.001) == "ready"
    assert len(calls) == 3


def test_wait_for_gives_none_once_time_is_up_having_checked_at_the_deadline() -> None:
    started = time.monotonic()
    calls: list[float] = []

    def never() -> bool:
        calls.append(time.monotonic())
        return False

    assert wait_for(never, 0.1, interval=0.02) is None
    assert calls[-1] - started >= 0.1 and len(calls) >= 2


def test_poll_returns_the_value_or_fails_naming_the_last_one() -> None:
    seen = iter([[], [], ["evt_1"]])
    assert poll(lambda: next(seen), 5, interval=0.001) == ["evt_1"]
    with pytest.raises(AssertionError, match=r"not met within 0.05s \(last: \[\]\)"):
        poll(lambda: [], 0.05, interval=0.01)


async def test_eventually_awaits_a_coroutine_check() -> None:
    calls: list[int] = []

    async def check() -> int | None:
        calls.append(1)
        await asyncio.sleep(0)
        return len(calls) if len(calls) == 2 else None

    assert await eventually(check, 5, interval=0.001) == 2


async def test_eventually_lets_the_loop_run_between_plain_checks() -> None:
    got: list[str] = []

    async def producer() -> None:
        await asyncio.sleep(0.02)
        got.append("event")

    task = asyncio.create_task(producer())
    assert await eventually(lambda: len(got) == 1, 5) is True
    await task


async def test_eventually_fails_naming_the_last_value() -> None:
    async def pending() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"not met within 0.05s \(last: False\)"):
        await eventually(pending, 0.05, interval=0.01)
