"""Acquirer health for the use cases (API.md §14): a snapshot of every configured acquirer, the probe
claim, and the attempt record the authorize flow writes. Rules: domain/health.py; SQL:
store/acquirer_health.py.

How the authorize flow uses it (the failover wiring):

    names = await routing.plan(gw, merchant_id, facts)   # claims the probes it needs, see below
    for name in names:
        ... authorize at `name` ...
        await acquirer_health.record_attempt(conn, gw, payment_id=…, merchant_id=…, acquirer=name,
                                             result="succeeded" | "declined" | "unavailable" | "unknown",
                                             failure_code=…, at=…)   # in the transaction of the outcome

`probe_or_skip` semantics: an acquirer that is `down` and whose cooldown has run out is probed by ONE
request. `plan` (services/routing.py) calls `probe_or_skip` for each such acquirer of the payment's list
before choosing: True means this request holds the probe (the acquirer is treated as up for it, and its
attempt — recorded as usual — decides: answered → up, unavailable/unknown → down another cooldown);
False means another request holds it or it is still cooling, and the acquirer is skipped like any `down`
one. A claim this request does not use (an earlier acquirer of its list authorized) runs out after one
cooldown and the next request probes then: a late probe, never two at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from paygate.config import Settings
from paygate.domain import health, views
from paygate.domain.health import Breaker, Policy, Status
from paygate.domain.routing import Standing
from paygate.services.gateway import Gateway, utcnow
from paygate.store import acquirer_health as store
from paygate.store.db import Conn, Row, transaction


@dataclass(frozen=True)
class Health:
    """One acquirer, as GET /v1/acquirers shows it. `phase` adds what `status` cannot say: whether a
    `down` acquirer is cooling or due for its probe."""

    name: str
    status: Status
    consecutive_failures: int
    down_until: datetime | None
    approval_rate: float | None
    attempts: int
    phase: health.Phase

    def view(self) -> dict[str, Any]:
        return {"object": "acquirer", "name": self.name, "status": self.status,
                "consecutive_failures": self.consecutive_failures, "down_until": views.ts(self.down_until),
                "approval_rate": self.approval_rate, "attempts": self.attempts}

    def standing(self, *, probing: bool = False) -> Standing:
        """For routing: up, or holding the probe, is not skipped."""
        return Standing(down=not (self.phase == "up" or probing), approval_rate=self.approval_rate)


def policy(settings: Settings) -> Policy:
    return Policy(trip_after=settings.acquirer_trip_after, cooldown=timedelta(seconds=settings.acquirer_cooldown_s))


async def snapshot(conn: Conn, names: list[str], *, now: datetime | None = None) -> dict[str, Health]:
    """name → Health for each of `names` (the configured acquirers, in their order)."""
    return _health(names, await store.standing(conn, names), now or utcnow())


async def snapshot_and_routing(
    conn: Conn, names: list[str], merchant_id: str, *, now: datetime | None = None
) -> tuple[dict[str, Health], Row | None]:
    """`snapshot`, and the merchant's routing row (None: the default routing), read in one statement."""
    both, routing_row = await store.standing_and_routing(conn, names, merchant_id)
    return _health(names, both, now or utcnow()), routing_row


def _health(names: list[str], both: dict[str, tuple[Breaker, store.Recent]], now: datetime) -> dict[str, Health]:
    out: dict[str, Health] = {}
    for name in names:
        b: Breaker = both[name][0]
        r = both[name][1]
        out[name] = Health(name, b.status, b.consecutive_failures, b.down_until, r.approval_rate, r.attempts,
                           health.phase(b, now))
    return out


async def probe_or_skip(gw: Gateway, name: str, *, now: datetime | None = None) -> bool:
    """True: this request holds `name`'s probe (committed at once, so no other process claims it while
    the probe runs). False: skip it. Only meaningful for an acquirer whose phase is `probe_due`."""
    async with transaction(gw.pool) as conn:
        return await store.claim_probe(conn, name, now=now or utcnow(), policy=policy(gw.settings))


async def record_attempt(
    conn: Conn, gw: Gateway, *, payment_id: str, merchant_id: str, acquirer: str, result: str,
    failure_code: str | None, at: datetime | None = None,
) -> Breaker:
    """One authorization attempt and its effect on the breaker, in the caller's transaction."""
    return await store.record_attempt(conn, payment_id=payment_id, merchant_id=merchant_id, acquirer=acquirer,
                                      result=result, failure_code=failure_code, at=at or utcnow(),
                                      policy=policy(gw.settings))


async def list_acquirers(gw: Gateway) -> dict[str, Any]:
    """GET /v1/acquirers: every configured acquirer, in configuration order."""
    names = list(gw.settings.acquirer_urls)
    async with gw.pool.connection() as conn:
        snap = await snapshot(conn, names)
    return {"object": "list", "data": [snap[n].view() for n in names], "has_more": False}
