"""Waiting for a condition: poll it, never sleep a fixed time and hope. The one loop of paygate — the
supervisor waits on health checks and process groups with it, and tests/polling.py builds its failing
`poll` and async `eventually` on it (tests use this one; src never depends on tests).

A check "holds" when it returns something truthy; that value is returned, so a check can fetch and test
in one go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")
# What a check returns while the condition does not hold yet.
Pending = Literal[False] | None


def wait_for(check: Callable[[], T | Pending], timeout: float, interval: float = 0.05) -> T | None:
    """Poll `check` every `interval` s until it returns something truthy (returned), or until `timeout`
    seconds have passed (None). The check runs at least once, and once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
