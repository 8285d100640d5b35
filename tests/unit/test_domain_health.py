"""The acquirer circuit breaker's rules (API.md §14), pure: trip, cooldown, one probe, its result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paygate.domain import health
from paygate.domain.health import UP, Breaker, Policy, after_attempt, claim_probe, phase

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(trip_after=5, cooldown=timedelta(seconds=30))


def fail(state: Breaker, n: int, at: datetime = T0, result: str = "unavailable") -> Breaker:
    for _ in range(n):
        state = after_attempt(state, result, at, POLICY)
    return state


def test_trips_after_n_consecutive_unavailability_failures() -> None:
    four = fail(UP, 4)
    assert (four.status, four.consecutive_failures, phase(four, T0)) == ("up", 4, "up")
    five = after_attempt(four, "unknown", T0, POLICY)  # no answer counts as unavailability
    assert five == Breaker("down", 5, T0 + timedelta(seconds=30))
    assert phase(five, T0 + timedelta(seconds=29)) == "cooling"


@pytest.mark.parametrize("answered", ["succeeded", "declined"])
def test_an_answer_resets_the_streak(answered: str) -> None:
    assert after_attempt(fail(UP, 4), answered, T0, POLICY) == UP
    assert fail(after_attempt(fail(UP, 4), answered, T0, POLICY), 4).status == "up"  # the streak restarts


def test_after_the_cooldown_exactly_one_probe_is_claimed() -> None:
    down = fail(UP, 5)
    assert claim_probe(down, T0 + timedelta(seconds=10), POLICY) is None  # still cooling
    later = T0 + timedelta(seconds=30)
    assert phase(down, later) == "probe_due"
    claimed = claim_probe(down, later, POLICY)
    assert claimed == Breaker("down", 5, later + timedelta(seconds=30))
    assert claim_probe(claimed, later, POLICY) is None  # a second claimer finds the lease
    assert claim_probe(claimed, later + timedelta(seconds=29), POLICY) is None
    # a claimer that never answers: the lease runs out and the next request probes
    assert claim_probe(claimed, later + timedelta(seconds=30), POLICY) is not None


def test_a_successful_probe_brings_it_up() -> None:
    later = T0 + timedelta(seconds=30)
    claimed = claim_probe(fail(UP, 5), later, POLICY)
    assert claimed is not None
    assert after_attempt(claimed, "succeeded", later, POLICY) == UP


def test_a_failed_probe_keeps_it_down_for_another_cooldown() -> None:
    later = T0 + timedelta(seconds=30)
    claimed = claim_probe(fail(UP, 5), later, POLICY)
    assert claimed is not None
    again = after_attempt(claimed, "unavailable", later + timedelta(seconds=1), POLICY)
    assert again == Breaker("down", 6, later + timedelta(seconds=31))
    assert phase(again, later + timedelta(seconds=30)) == "cooling"


def test_an_up_acquirer_has_no_probe_and_the_hot_path_writes_nothing() -> None:
    assert claim_probe(UP, T0, POLICY) is None
    assert not health.needs_write(UP, "succeeded")
    assert not health.needs_write(UP, "declined")
    assert health.needs_write(UP, "unavailable")
    assert health.needs_write(fail(UP, 1), "succeeded")


def test_an_unknown_result_is_refused() -> None:
    with pytest.raises(ValueError):
        after_attempt(UP, "maybe", T0, POLICY)
