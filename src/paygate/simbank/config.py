"""The simulator's configuration: its own small record, filled by the command line from `PAYGATE_BANK_*`.

The simulator never reads the gateway's Settings; `paygate bank` translates them (cli.py), tests build
a BankConfig directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_NAME = "bank"
NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")


def schema_for(name: str) -> str:
    """Each named bank keeps its state in its own schema: `bank` for the default, `bank_<name>` otherwise."""
    if not NAME.fullmatch(name):
        raise ValueError(f"bank name {name!r} must look like alpha_2 ([a-z][a-z0-9_]{{0,30}})")
    return "bank" if name == DEFAULT_NAME else f"bank_{name}"


@dataclass(frozen=True)
class BankConfig:
    webhook_secret: str
    name: str = DEFAULT_NAME
    failure_rate: float = 0.0
    lost_rate: float = 0.0
    latency_ms: str = "0-0"
    duplicate_rate: float = 0.0
    upi_delay_ms: str = "1000-3000"
    callback_delay_ms: str = "0-0"  # authentication callbacks first due after this (§15; a test knob)
    dispute_delay_ms: str = "1000-3000"  # the test card's dispute, after its capture (§17)
    dispute_decision_ms: str = "1000-3000"  # evidence decided after this (§17)
    fee_bps: int = 0  # the bank's fee on each settled capture (§12 v2)
    settlement_interval_s: float = 0.0  # close batches on this interval; 0 = only on request
    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 3000

    @property
    def schema(self) -> str:
        return schema_for(self.name)
