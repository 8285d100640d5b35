"""Fault injection for the simulator, from the `PAYGATE_BANK_*` settings (API.md §12).

Only mutation POSTs (authorizations, captures, voids, refunds) are faulted; inquiries and GETs never.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from paygate.config import Settings


def parse_range_ms(text: str) -> tuple[float, float]:
    """`"min-max"` (or a single number) in milliseconds → (min, max) in seconds."""
    lo, sep, hi = text.strip().partition("-")
    low = float(lo) if lo.strip() else 0.0
    high = float(hi) if sep and hi.strip() else low
    if low < 0 or high < low:
        raise ValueError(f"bad millisecond range {text!r}: want 'min-max' with 0 <= min <= max")
    return low / 1000.0, high / 1000.0


def _rate(value: float, name: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value}")
    return value


@dataclass
class Faults:
    failure_rate: float = 0.0  # answer 500 without acting
    lost_rate: float = 0.0  # act and commit, then answer 500
    latency_s: tuple[float, float] = (0.0, 0.0)  # uniform sleep before each mutation
    duplicate_rate: float = 0.0  # send a settled operation's callback a second time, late
    upi_delay_s: tuple[float, float] = (1.0, 3.0)
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_settings(cls, settings: Settings, rng: random.Random | None = None) -> Faults:
        return cls(
            failure_rate=_rate(settings.bank_failure_rate, "bank_failure_rate"),
            lost_rate=_rate(settings.bank_lost_rate, "bank_lost_rate"),
            latency_s=parse_range_ms(settings.bank_latency_ms),
            duplicate_rate=_rate(settings.bank_duplicate_rate, "bank_duplicate_rate"),
            upi_delay_s=parse_range_ms(settings.bank_upi_delay_ms),
            rng=rng or random.Random(),
        )

    def _hit(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    async def latency(self) -> None:
        low, high = self.latency_s
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high))

    def fail(self) -> bool:
        return self._hit(self.failure_rate)

    def lose(self) -> bool:
        return self._hit(self.lost_rate)

    def duplicate(self) -> bool:
        return self._hit(self.duplicate_rate)

    def upi_delay(self) -> float:
        return self.rng.uniform(*self.upi_delay_s)

    def duplicate_delay(self) -> float:
        return self.rng.uniform(0.2, 2.0)
