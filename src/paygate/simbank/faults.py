"""Fault injection for the simulator, from the `PAYGATE_BANK_*` settings (API.md §12), changeable at run
time through `GET`/`PUT /v1/faults` (§12 v2).

Only mutation POSTs (authorizations, captures, voids, refunds) are faulted; inquiries and GETs never.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from paygate.simbank.config import BankConfig


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


_KNOBS = ("failure_rate", "lost_rate", "latency_ms", "duplicate_rate", "callback_delay_ms")
_RANGES = {"latency_ms": "latency_s", "callback_delay_ms": "callback_delay_s"}


@dataclass
class Faults:
    failure_rate: float = 0.0  # answer 500 without acting
    lost_rate: float = 0.0  # act and commit, then answer 500
    latency_s: tuple[float, float] = (0.0, 0.0)  # uniform sleep before each mutation
    duplicate_rate: float = 0.0  # send a settled operation's callback a second time, late
    upi_delay_s: tuple[float, float] = (1.0, 3.0)
    # authentication callbacks (§15) are first due after this: a test of the browser's return without the
    # callback sets it high (the callback still comes, later)
    callback_delay_s: tuple[float, float] = (0.0, 0.0)
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_config(cls, config: BankConfig, rng: random.Random | None = None) -> Faults:
        return cls(
            failure_rate=_rate(config.failure_rate, "bank_failure_rate"),
            lost_rate=_rate(config.lost_rate, "bank_lost_rate"),
            latency_s=parse_range_ms(config.latency_ms),
            duplicate_rate=_rate(config.duplicate_rate, "bank_duplicate_rate"),
            upi_delay_s=parse_range_ms(config.upi_delay_ms),
            callback_delay_s=parse_range_ms(config.callback_delay_ms),
            rng=rng or random.Random(),
        )

    def view(self) -> dict[str, Any]:
        low, high = self.latency_s
        return {"object": "bank_faults", "failure_rate": self.failure_rate, "lost_rate": self.lost_rate,
                "latency_ms": f"{low * 1000:g}-{high * 1000:g}", "duplicate_rate": self.duplicate_rate,
                "callback_delay_ms": f"{self.callback_delay_s[0] * 1000:g}-{self.callback_delay_s[1] * 1000:g}"}

    def update(self, doc: Any) -> None:
        """Apply any subset of the knobs, all or none: ValueError (naming the field) if one is bad."""
        if not isinstance(doc, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(doc) - set(_KNOBS)
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]}")
        new: dict[str, Any] = {}
        for name, value in doc.items():
            if name in _RANGES:
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a string 'min-max'")
                try:
                    new[_RANGES[name]] = parse_range_ms(value)
                except ValueError:
                    raise ValueError(f"{name} must be 'min-max' with 0 <= min <= max") from None
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number between 0 and 1")
                new[name] = _rate(float(value), name)
        for attr, value in new.items():  # validated above: nothing changes unless everything is valid
            setattr(self, attr, value)

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

    def callback_delay(self) -> float:
        return self.rng.uniform(*self.callback_delay_s)

    def duplicate_delay(self) -> float:
        return self.rng.uniform(0.2, 2.0)
