"""Waiting for a condition in a test: poll it, never sleep a fixed time and hope.

One loop, three doors: `wait_for` (sync; the value, or None when time runs out, for callers that act on
a timeout, e.g. a supervisor escalating to SIGKILL — it is paygate.polling's, the one the runtime
supervisor uses, re-exported), `poll` (sync; fails the test with the last value) and `eventually`
(async; the same, for a check that is a coroutine or must let the event loop run).
A check "holds" when it returns something truthy; that value is returned, so a check can fetch and test
in one go: `row = poll(lambda: (r := db.one(...)) and r["status"] == "paid" and r)`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

from paygate.polling import Pending, wait_for

__all__ = ["Pending", "eventually", "poll", "wait_for"]

T = TypeVar("T")


def poll(check: Callable[[], T | Pending], within_s: float = 15.0, interval: float = 0.05) -> T:
    """`wait_for`, failing the test (with the check's last value) when it does not hold in time."""
    last: T | Pending = None

    def recorded() -> T | Pending:
        nonlocal last
        last = check()
        return last

    result = wait_for(recorded, within_s, interval)
    if result is None:
        raise AssertionError(f"condition not met within {within_s}s (last: {last!r})")
    return result


@overload
async def eventually(
    check: Callable[[], Awaitable[T | Pending]], within_s: float = ..., interval: float = ...
) -> T: ...
@overload
async def eventually(check: Callable[[], T | Pending], within_s: float = ..., interval: float = ...) -> T: ...
async def eventually(
    check: Callable[[], Awaitable[T | Pending]] | Callable[[], T | Pending],
    within_s: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Async `poll`: `check` may be a coroutine function or a plain one (a condition on state that tasks
    on this loop change; sleeping between checks lets them run). Fails with the last value."""
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {within_s}s (last: {result!r})")
        await asyncio.sleep(interval)
