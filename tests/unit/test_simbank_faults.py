"""Run-time faults (`PUT {bank}/v1/faults`): any subset, validated in full before anything changes."""

from __future__ import annotations

from typing import Any

import pytest

from paygate.simbank.config import BankConfig
from paygate.simbank.faults import Faults


def faults() -> Faults:
    return Faults.from_config(BankConfig(webhook_secret="whsec_x", lost_rate=0.1, latency_ms="0-1200"))


def test_view_speaks_the_environment_knobs_language() -> None:
    assert faults().view() == {"object": "bank_faults", "failure_rate": 0.0, "lost_rate": 0.1,
                               "latency_ms": "0-1200", "duplicate_rate": 0.0, "callback_delay_ms": "0-0"}


def test_a_subset_changes_only_itself() -> None:
    f = faults()
    f.update({"failure_rate": 1, "latency_ms": "5-10"})
    assert (f.failure_rate, f.lost_rate, f.latency_s, f.duplicate_rate) == (1.0, 0.1, (0.005, 0.01), 0.0)


@pytest.mark.parametrize("bad", [
    {"failure_rate": 1.01}, {"lost_rate": -0.1}, {"duplicate_rate": True}, {"failure_rate": "0.5"},
    {"latency_ms": "10-5"}, {"latency_ms": 5}, {"latency_ms": "a-b"}, {"failure_rate": float("nan")},
    {"upi_delay_ms": "1-2"}, [], "x",
    {"failure_rate": 0.5, "lost_rate": 2},  # one bad field: the good one is not applied either
])
def test_a_bad_value_changes_nothing(bad: Any) -> None:
    f = faults()
    before = f.view()
    with pytest.raises(ValueError):
        f.update(bad)
    assert f.view() == before
