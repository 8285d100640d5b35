"""Dashboard login throttling (API.md §19): after `max_failures` failed logins within `window_s` — per
email, and separately per client address — every attempt is refused (the right password too) until the
oldest of those failures leaves the window. Pure arithmetic over failure times the caller supplies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LoginThrottle:
    max_failures: int = 5
    window_s: int = 900

    def retry_after(self, failures: list[datetime], now: datetime) -> int | None:
        """Whole seconds until another attempt may be made, or None if one may be made now.

        `failures` are the failure times of one email (or one address), newest first; only the newest
        `max_failures` matter. Once there are that many within the window, the lock lifts when the
        `max_failures`-th newest one leaves it (then only max_failures - 1 remain)."""
        if self.max_failures <= 0:  # throttling disabled
            return None
        window = timedelta(seconds=self.window_s)
        recent = [t for t in failures if t > now - window]
        if len(recent) < self.max_failures:
            return None
        lifts_at = sorted(recent, reverse=True)[self.max_failures - 1] + window
        return max(1, math.ceil((lifts_at - now).total_seconds()))
