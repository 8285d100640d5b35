"""The simulated bank after the payment (API.md §17, §18, §12 v2): disputes and settlement batches.

Like simbank/store.py, this is the simulator's own SQL, run in its schema. Every capture, refund, dispute and
dispute reversal leaves a `movements` row; a settlement batch takes the unsettled ones per currency (with the
drill's drop/adjust/extra knobs). Disputes of the test card 4000000000000259 are scheduled at capture and
opened by the background loop; evidence is decided by the same loop. Every change that paygate must learn
about writes its signed callback into the outbox in the same transaction (at least once, retried).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from paygate.simbank.rules import new_id
from paygate.simbank.store import Conn, Pool, _one, rfc3339

AUTO_DISPUTE_CARD = "4000000000000259"
REASONS = frozenset({"fraudulent", "product_not_received", "duplicate", "general"})
WINNING_WORD = "winning_evidence"


@dataclass
class Timing:
    """Delays of the background decisions (seconds, uniform); set from the bank's configuration."""

    dispute_delay_s: tuple[float, float] = (1.0, 3.0)
    decision_delay_s: tuple[float, float] = (1.0, 3.0)
    fee_bps: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def dispute_delay(self) -> float:
        return self.rng.uniform(*self.dispute_delay_s)

    def decision_delay(self) -> float:
        return self.rng.uniform(*self.decision_delay_s)


TIMING = Timing()  # one per process; create_app sets it from the BankConfig


class Refused(Exception):
    """A test/inspection request that cannot be applied (→ 4xx)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def fee_for(amount: int, bps: int) -> int:
    """The bank's fee on a capture: bps of the amount, rounded half up."""
    return (amount * bps + 5000) // 10000


# --- hooks called by store.py inside an operation's transaction ----------------------------------


async def record_movement(conn: Conn, reference: str, type_: str, amount: int, currency: str) -> None:
    await conn.execute(b"INSERT INTO movements (id, reference, type, amount, currency) VALUES (%s, %s, %s, %s, %s)",
                       (new_id("bmv"), reference, type_, amount, currency))


async def after_capture(conn: Conn, reference: str, amount: int, currency: str, *,
                        disputed: bool | None = None) -> None:
    """A capture is owed to the merchant; the test card's capture is disputed 1-3 s later. `disputed`: the
    authorization's `dispute_on_capture` when the caller has it (else it is read)."""
    await record_movement(conn, reference, "capture", amount, currency)
    if disputed is None:
        row = await _one(conn, "SELECT dispute_on_capture FROM authorizations WHERE reference = %s", (reference,))
        disputed = row is not None and bool(row["dispute_on_capture"])
    if disputed:
        await conn.execute(
            b"INSERT INTO disputes (id, reference, amount, currency, reason, status, open_at)"
            b" VALUES (%s, %s, %s, %s, 'fraudulent', 'scheduled', now() + make_interval(secs => %s))",
            (new_id("bdp"), reference, amount, currency, TIMING.dispute_delay()))


# --- callbacks -------------------------------------------------------------------------------------


async def _callback(conn: Conn, url: str | None, type_: str, data: dict[str, Any]) -> None:
    if not url:
        return
    event_id = new_id("bevt")
    body = orjson.dumps({"id": event_id, "type": type_, "created_at": rfc3339(datetime.now(UTC)), "data": data})
    await conn.execute(b"INSERT INTO callbacks (event_id, url, body, due_at) VALUES (%s, %s, %s, now())",
                       (event_id, url, body))


async def _callback_url(conn: Conn, reference: str) -> str | None:
    row = await _one(conn, "SELECT callback_url FROM authorizations WHERE reference = %s", (reference,))
    return row["callback_url"] if row is not None else None


def _dispute_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "object": "bank_dispute", "reference": row["reference"], "amount": row["amount"],
            "currency": row["currency"], "reason": row["reason"],
            "status": "needs_response" if row["status"] == "scheduled" else row["status"],
            "created_at": rfc3339(row["created_at"])}


async def _dispute_event(conn: Conn, row: Any, type_: str) -> None:
    await _callback(conn, await _callback_url(conn, row["reference"]), type_,
                    {"reference": row["reference"], "dispute_id": row["id"], "amount": row["amount"],
                     "reason": row["reason"]})


# --- disputes --------------------------------------------------------------------------------------


async def _open(conn: Conn, row: Any) -> None:
    """Claw the amount back (a negative movement) and tell paygate."""
    await conn.execute(b"UPDATE disputes SET status = 'needs_response' WHERE id = %s", (row["id"],))
    await record_movement(conn, row["reference"], "dispute", -row["amount"], row["currency"])
    await _dispute_event(conn, row, "dispute.created")


async def open_dispute(pool: Pool, reference: str, amount: int | None, reason: str) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        auth = await _one(conn, "SELECT amount, currency, state, captured_amount, refunded_amount FROM authorizations"
                                " WHERE reference = %s FOR UPDATE", (reference,))
        if auth is None or auth["state"] != "captured":
            raise Refused(404, "resource_missing", "No captured payment with that reference.")
        taken = await _one(conn, "SELECT coalesce(sum(amount), 0)::bigint AS n FROM disputes WHERE reference = %s"
                                 " AND status <> 'won'", (reference,))
        open_amount = auth["captured_amount"] - auth["refunded_amount"] - (taken["n"] if taken else 0)
        amount = open_amount if amount is None else amount
        if amount <= 0 or amount > open_amount:
            raise Refused(400, "amount_too_large", f"At most {open_amount} can be disputed.")
        row = await _one(conn, "INSERT INTO disputes (id, reference, amount, currency, reason, status) VALUES"
                               " (%s, %s, %s, %s, %s, 'scheduled') RETURNING *",
                         (new_id("bdp"), reference, amount, auth["currency"], reason))
        assert row is not None
        await _open(conn, row)
        row = await _one(conn, "SELECT * FROM disputes WHERE id = %s", (row["id"],))
        return _dispute_json(row)


async def list_disputes(pool: Pool, reference: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(b"SELECT * FROM disputes WHERE reference = %s ORDER BY created_at, id", (reference,))
        return [_dispute_json(r) for r in await cur.fetchall()]


async def respond(pool: Pool, dispute_id: str, *, evidence: str | None) -> dict[str, Any]:
    """Evidence (decided later) or acceptance (lost now). Repeating the same answer is a no-op that
    answers the dispute as it is, so paygate may retry; any other move from a decided state is 409."""
    async with pool.connection() as conn, conn.transaction():
        row = await _one(conn, "SELECT * FROM disputes WHERE id = %s FOR UPDATE", (dispute_id,))
        if row is None:
            raise Refused(404, "resource_missing", "No such dispute.")
        if row["status"] == "needs_response":
            if evidence is None:
                await conn.execute(b"UPDATE disputes SET status = 'lost' WHERE id = %s", (dispute_id,))
                await _dispute_event(conn, row, "dispute.lost")
            else:
                await conn.execute(b"UPDATE disputes SET status = 'under_review', evidence_wins = %s,"
                                   b" decide_at = now() + make_interval(secs => %s) WHERE id = %s",
                                   (WINNING_WORD in evidence, TIMING.decision_delay(), dispute_id))
        elif not ((evidence is None and row["status"] == "lost" and row["evidence_wins"] is None)
                  or (evidence is not None and row["evidence_wins"] is not None)):
            raise Refused(409, "dispute_not_open", f"The dispute is {row['status']}.")
        row = await _one(conn, "SELECT * FROM disputes WHERE id = %s", (dispute_id,))
        return _dispute_json(row)


async def due_work(pool: Pool, limit: int = 50) -> int:
    """Open the scheduled disputes and decide the evidence that are due; each in its own row's change."""
    done = 0
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(b"SELECT * FROM disputes WHERE status = 'scheduled' AND open_at <= now()"
                                 b" ORDER BY open_at LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
        for row in await cur.fetchall():
            await _open(conn, row)
            done += 1
        cur = await conn.execute(b"SELECT * FROM disputes WHERE status = 'under_review' AND decide_at <= now()"
                                 b" ORDER BY decide_at LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
        for row in await cur.fetchall():
            won = bool(row["evidence_wins"])
            await conn.execute(b"UPDATE disputes SET status = %s WHERE id = %s", ("won" if won else "lost", row["id"]))
            if won:
                await record_movement(conn, row["reference"], "dispute_reversal", row["amount"], row["currency"])
            await _dispute_event(conn, row, "dispute.won" if won else "dispute.lost")
            done += 1
    return done


# --- settlement ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    """The drill's knobs: references left out, amounts changed, lines added."""

    drop: frozenset[str] = frozenset()
    adjust: dict[str, int] | None = None
    extra: tuple[dict[str, Any], ...] = ()


async def close_batches(pool: Pool, injection: Injection = Injection()) -> list[dict[str, Any]]:
    """One batch per currency with lines; the unsettled movements of the dropped references stay for later."""
    adjust = injection.adjust or {}
    out: list[dict[str, Any]] = []
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(b"SELECT pg_advisory_xact_lock(hashtextextended('bank.settlement', 0))")
        cur = await conn.execute(b"SELECT id, reference, type, amount, currency FROM movements"
                                 b" WHERE settlement_id IS NULL ORDER BY created_at, id FOR UPDATE")
        lines: dict[str, list[tuple[str | None, str, str, int]]] = {}
        for m in await cur.fetchall():
            if m["reference"] in injection.drop:
                continue
            lines.setdefault(m["currency"], []).append((m["id"], m["reference"], m["type"], m["amount"]))
        for e in injection.extra:
            lines.setdefault(str(e.get("currency") or "USD").upper(), []).append(
                (None, e["reference"], e["type"], int(e["amount"])))
        for currency, items in sorted(lines.items()):
            batch_id = new_id("bstl")
            await conn.execute(b"INSERT INTO settlement_batches (id, currency) VALUES (%s, %s)", (batch_id, currency))
            urls: set[str] = set()
            adjusted: set[str] = set()
            for seq, (mid, reference, type_, amount) in enumerate(items):
                if reference in adjust and reference not in adjusted and type_ == "capture":
                    amount += adjust[reference]
                    adjusted.add(reference)
                fee = fee_for(amount, TIMING.fee_bps) if type_ == "capture" else 0
                await conn.execute(b"INSERT INTO settlement_lines (settlement_id, seq, reference, type, amount, fee,"
                                   b" net) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                   (batch_id, seq, reference, type_, amount, fee, amount - fee))
                if mid is not None:
                    await conn.execute(b"UPDATE movements SET settlement_id = %s WHERE id = %s", (batch_id, mid))
                url = await _callback_url(conn, reference)
                if url:
                    urls.add(url)
            if not urls:  # only extra lines: tell whoever the bank last called
                row = await _one(conn, "SELECT callback_url FROM authorizations WHERE callback_url IS NOT NULL"
                                       " ORDER BY operation_id DESC LIMIT 1", ())
                if row is not None:
                    urls.add(row["callback_url"])
            for url in sorted(urls):
                await _callback(conn, url, "settlement.created", {"settlement_id": batch_id, "currency": currency})
            out.append({"id": batch_id, "object": "bank_settlement", "currency": currency, "line_count": len(items)})
    return out


async def get_batch(pool: Pool, batch_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        row = await _one(conn, "SELECT * FROM settlement_batches WHERE id = %s", (batch_id,))
        if row is None:
            return None
        cur = await conn.execute(b"SELECT reference, type, amount, fee, net FROM settlement_lines"
                                 b" WHERE settlement_id = %s ORDER BY seq", (batch_id,))
        lines = [dict(r) for r in await cur.fetchall()]
    return {"id": row["id"], "object": "bank_settlement", "currency": row["currency"],
            "created_at": rfc3339(row["created_at"]), "lines": lines}


async def list_batches(pool: Pool, since: datetime | None = None) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            b"SELECT b.id, b.currency, b.created_at, count(l.seq) AS line_count FROM settlement_batches b"
            b" LEFT JOIN settlement_lines l ON l.settlement_id = b.id WHERE b.created_at >= %s"
            b" GROUP BY b.id ORDER BY b.created_at, b.id LIMIT 1000",
            (since or datetime(1970, 1, 1, tzinfo=UTC),))
        return [{"id": r["id"], "object": "bank_settlement", "currency": r["currency"],
                 "line_count": r["line_count"], "created_at": rfc3339(r["created_at"])} for r in await cur.fetchall()]
