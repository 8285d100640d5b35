"""Acquirer attempts and breakers: every statement on `acquirer_attempts` and `acquirer_health` (one of them
also reads the merchant's `merchant_routing` row, for routing's plan: `standing_and_routing`).

The breaker's rules are domain/health.py; here they are applied under the breaker row's lock (SELECT …
FOR UPDATE), so concurrent API processes change one breaker one at a time and two of them can never both
claim a probe. Lock order: an acquirer's breaker row is the last lock a transaction takes, after the
payment's, so the authorize flow can record an attempt inside its own transaction without a deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from paygate.domain import health
from paygate.domain.health import Breaker, Policy
from paygate.store import routing
from paygate.store.db import Conn, Row, fetch_all, fetch_one

WINDOW = 100  # approval_rate: the share of the last WINDOW authorization attempts that were approved


@dataclass(frozen=True)
class Recent:
    """The last WINDOW attempts at an acquirer: how many, and how many were approved."""

    attempts: int
    approved: int

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.attempts if self.attempts else None


def _breaker(row: Row | None) -> Breaker:
    if row is None:
        return health.UP
    return Breaker(row["status"], row["consecutive_failures"], row["down_until"])


async def _save(conn: Conn, acquirer: str, state: Breaker, now: datetime) -> None:
    await conn.execute(
        b"UPDATE acquirer_health SET status = %s, consecutive_failures = %s, down_until = %s, updated_at = %s "
        b"WHERE acquirer = %s",
        (state.status, state.consecutive_failures, state.down_until, now, acquirer))


async def _locked(conn: Conn, acquirer: str) -> Breaker:
    """The breaker, its row locked until the end of the caller's transaction (created if missing)."""
    await conn.execute(b"INSERT INTO acquirer_health (acquirer) VALUES (%s) ON CONFLICT DO NOTHING", (acquirer,))
    row = await fetch_one(conn, "SELECT * FROM acquirer_health WHERE acquirer = %s FOR UPDATE", (acquirer,))
    return _breaker(row)


async def breakers(conn: Conn, acquirers: Sequence[str]) -> dict[str, Breaker]:
    """Every named acquirer's breaker as last committed (no lock; an acquirer never recorded is up)."""
    rows = await fetch_all(conn, "SELECT * FROM acquirer_health WHERE acquirer = ANY(%s)", (list(acquirers),))
    found = {r["acquirer"]: _breaker(r) for r in rows}
    return {name: found.get(name, health.UP) for name in acquirers}


async def recent(conn: Conn, acquirers: Sequence[str]) -> dict[str, Recent]:
    """The last WINDOW attempts of each acquirer, all merchants (one index range scan each)."""
    rows = await fetch_all(
        conn,
        "SELECT a.name, count(r.result) AS attempts, count(r.result) FILTER (WHERE r.result = 'succeeded') AS approved "
        "FROM unnest(%s::text[]) AS a(name) LEFT JOIN LATERAL ("
        "  SELECT result FROM acquirer_attempts WHERE acquirer = a.name ORDER BY at DESC, id DESC LIMIT %s"
        ") r ON true GROUP BY a.name",
        (list(acquirers), WINDOW))
    found = {r["name"]: Recent(r["attempts"], r["approved"]) for r in rows}
    return {name: found.get(name, Recent(0, 0)) for name in acquirers}


async def standing(conn: Conn, acquirers: Sequence[str]) -> dict[str, tuple[Breaker, Recent]]:
    """`breakers` and `recent` in one statement (ADR 0019)."""
    return (await standing_and_routing(conn, acquirers, None))[0]


async def standing_and_routing(
    conn: Conn, acquirers: Sequence[str], merchant_id: str | None
) -> tuple[dict[str, tuple[Breaker, Recent]], Row | None]:
    """`standing`, and the merchant's routing row ({document, updated_at} as store/routing.py `get` reads it,
    None while it has set none), in one statement: what routing's plan reads for every payment, so one
    round trip and one implicit transaction rather than two (decision 0023). The routing row rides on the
    first acquirer's row only (`n = 1`): it is the same for all of them, and decoded once."""
    if not acquirers:  # no row to carry it
        return {}, await routing.get(conn, merchant_id) if merchant_id is not None else None
    rows = await fetch_all(
        conn,
        "SELECT a.name, h.status, h.consecutive_failures, h.down_until, r.attempts, r.approved, "
        "m.merchant_id AS routing_of, m.document, m.updated_at "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS a(name, n) LEFT JOIN acquirer_health h ON h.acquirer = a.name "
        "LEFT JOIN merchant_routing m ON a.n = 1 AND m.merchant_id = %s "
        "CROSS JOIN LATERAL ("
        "  SELECT count(*) AS attempts, count(*) FILTER (WHERE result = 'succeeded') AS approved FROM ("
        "    SELECT result FROM acquirer_attempts WHERE acquirer = a.name ORDER BY at DESC, id DESC LIMIT %s) w"
        ") r",
        (list(acquirers), merchant_id, WINDOW))
    found = {r["name"]: (_breaker(r) if r["status"] is not None else health.UP, Recent(r["attempts"], r["approved"]))
             for r in rows}
    document = next(({"document": r["document"], "updated_at": r["updated_at"]} for r in rows
                     if r["routing_of"] is not None), None)
    return {name: found.get(name, (health.UP, Recent(0, 0))) for name in acquirers}, document


async def record_attempt(
    conn: Conn, *, payment_id: str, merchant_id: str, acquirer: str, result: str, failure_code: str | None,
    at: datetime, policy: Policy,
) -> Breaker:
    """One authorization attempt at `acquirer` and its effect on the acquirer's breaker, both in the
    caller's transaction (the one that records the attempt's outcome on the payment). Returns the breaker
    after it. An answered attempt at a healthy acquirer (the hot path) takes no lock on the breaker."""
    if result not in health.RESULTS:
        raise ValueError(f"unknown attempt result {result!r}")
    # the attempt and the breaker as committed, in one statement (the hot path's only read here; migration
    # 0016's function, which the outcome phase's function calls too)
    row = await fetch_one(conn, "SELECT * FROM paygate_record_attempt(%s, %s, %s, %s, %s, %s)",
                          (payment_id, merchant_id, acquirer, result, failure_code, at))
    current = _breaker(row)
    if not health.needs_write(current, result):
        return current
    state = await _locked(conn, acquirer)
    after = health.after_attempt(state, result, at, policy)
    if after != state:
        await _save(conn, acquirer, after, at)
    return after


async def claim_probe(conn: Conn, acquirer: str, *, now: datetime, policy: Policy) -> bool:
    """Whether this caller now holds `acquirer`'s probe (domain/health.py `claim_probe`). Run it in a
    transaction of its own and commit before probing: the claim must be visible to the other processes
    while the probe runs. Two concurrent claimers serialise on the row lock; the second sees the lease."""
    state = await _locked(conn, acquirer)
    claimed = health.claim_probe(state, now, policy)
    if claimed is None:
        return False
    await _save(conn, acquirer, claimed, now)
    return True


async def attempts_of(conn: Conn, payment_id: str) -> list[Row]:
    """A payment's attempts, oldest first."""
    return await fetch_all(
        conn, "SELECT acquirer, result, failure_code, at FROM acquirer_attempts WHERE payment_id = %s ORDER BY id",
        (payment_id,))
