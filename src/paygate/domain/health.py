"""An acquirer's circuit breaker (API.md §14) as pure rules: its state, what an authorization attempt does
to it, and when (and by whom) it is probed. store/acquirer_health.py keeps the state in PostgreSQL and
applies these rules under a row lock, so every API process shares one breaker per acquirer.

    up ──(trip_after consecutive unavailable/unknown)──▶ down, cooling until down_until
    down, now ≥ down_until ──(one request claims the probe)──▶ down, cooling another cooldown (the lease)
    any attempt that is answered (succeeded, declined) ──▶ up, 0 failures
    an unavailable/unknown attempt while down ──▶ down, cooling another cooldown from now

A probe claim is a lease: the claimer pushes down_until one cooldown ahead, so no other process claims it
meanwhile; the claimer's attempt then decides. A claimer that dies without an answer is the same as a
failed probe: the lease runs out and the next request probes.

`unknown` (no answer, nor to the inquiry) counts as unavailability: it is the strongest sign that the
acquirer is not answering. A decline counts as health: the acquirer answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Status = Literal["up", "down"]
Result = Literal["succeeded", "declined", "unavailable", "unknown"]
Phase = Literal["up", "cooling", "probe_due"]
RESULTS: tuple[str, ...] = ("succeeded", "declined", "unavailable", "unknown")
_FAILURES = frozenset({"unavailable", "unknown"})


@dataclass(frozen=True)
class Policy:
    trip_after: int = 5
    cooldown: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class Breaker:
    status: Status = "up"
    consecutive_failures: int = 0
    down_until: datetime | None = None


UP = Breaker()


def is_failure(result: str) -> bool:
    return result in _FAILURES


def after_attempt(state: Breaker, result: str, now: datetime, policy: Policy) -> Breaker:
    """The breaker after one authorization attempt at its acquirer ended with `result`."""
    if result not in RESULTS:
        raise ValueError(f"unknown attempt result {result!r}")
    if not is_failure(result):
        return UP
    failures = state.consecutive_failures + 1
    if state.status == "down" or failures >= policy.trip_after:
        return Breaker("down", failures, now + policy.cooldown)
    return Breaker("up", failures, None)


def phase(state: Breaker, now: datetime) -> Phase:
    """`up`; `cooling` (down, skipped); `probe_due` (down, and the next request may probe it)."""
    if state.status == "up":
        return "up"
    if state.down_until is not None and now < state.down_until:
        return "cooling"
    return "probe_due"


def claim_probe(state: Breaker, now: datetime, policy: Policy) -> Breaker | None:
    """The state once this request holds the probe, or None when there is no probe to claim (it is up,
    still cooling, or another request holds the probe's lease)."""
    if phase(state, now) != "probe_due":
        return None
    return Breaker("down", state.consecutive_failures, now + policy.cooldown)


def needs_write(state: Breaker, result: str) -> bool:
    """Whether an attempt changes the stored breaker: the hot path (an up acquirer answering) writes
    nothing, so payments at a healthy acquirer do not queue on its breaker row."""
    return is_failure(result) or state != UP
