"""Retry timing as pure functions: exponential backoff with full jitter, and the webhook schedule."""

from __future__ import annotations

import random


def backoff(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    r = rng or random
    return r.uniform(0, min(cap_s, base_s * (2**attempt)))


def parse_schedule(text: str) -> list[float]:
    """`PAYGATE_WEBHOOK_RETRY_SCHEDULE`: comma-separated delays in seconds, one per attempt."""
    delays = [float(part) for part in text.split(",") if part.strip()]
    if not delays or any(d < 0 for d in delays):
        raise ValueError("the retry schedule needs one or more non-negative delays")
    return delays


def jittered(delay_s: float, rng: random.Random | None = None, spread: float = 0.2) -> float:
    r = rng or random
    return delay_s * r.uniform(1 - spread, 1 + spread)


def next_delay(attempts_made: int, schedule: list[float], rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt of a `schedule` (one delay per attempt, the first being the first
    attempt's) after `attempts_made` attempts, with ±20 % jitter; None when the schedule is spent."""
    if attempts_made >= len(schedule):
        return None
    return jittered(schedule[attempts_made], rng)
