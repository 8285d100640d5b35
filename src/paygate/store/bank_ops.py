"""Write-ahead intents for bank calls; recovery claims the due ones with SKIP LOCKED."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paygate.store.db import Conn, Row, Write, fetch_all, fetch_one, run


def insert_write(
    *, id: str, merchant_id: str, payment_id: str, kind: str, amount: int, acquirer: str, next_attempt_at: datetime,
    refund_id: str | None = None,
) -> Write:
    """The common insert (no authentication), not sent yet: `insert` sends it, or a phase with its others."""
    return Write("INSERT INTO bank_operations (id, merchant_id, payment_id, refund_id, kind, amount, acquirer,"
                 " next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (id, merchant_id, payment_id, refund_id, kind, amount, acquirer, next_attempt_at))


async def insert(
    conn: Conn, *, id: str, merchant_id: str, payment_id: str, kind: str, amount: int, acquirer: str,
    next_attempt_at: datetime, refund_id: str | None = None, authentication_ref: str | None = None,
) -> None:
    if authentication_ref is None:  # the common case, unchanged
        await run(conn, insert_write(id=id, merchant_id=merchant_id, payment_id=payment_id, kind=kind,
                                     amount=amount, acquirer=acquirer, next_attempt_at=next_attempt_at,
                                     refund_id=refund_id))
        return
    await conn.execute(
        "INSERT INTO bank_operations (id, merchant_id, payment_id, refund_id, kind, amount, acquirer, next_attempt_at,"
        " authentication_ref) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (id, merchant_id, payment_id, refund_id, kind, amount, acquirer, next_attempt_at, authentication_ref),
    )


async def get(conn: Conn, op_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM bank_operations WHERE id = %s", (op_id,))


async def lock_with_payment(conn: Conn, op_id: str) -> tuple[Row, Row]:
    """(payment, operation), the payment locked FOR UPDATE, the operation read once the lock is held.

    Two statements, not one join: a join that waits for the payment's lock returns the payment as committed
    by the holder but the operation as it was *before* the wait (READ COMMITTED re-checks only the locked
    row), so a request that waited behind another's settle or failover would see an operation still
    `pending` that the other had just resolved — and resolve it again, or fail over a second time. The
    second statement takes its snapshot after the first returned, when the lock is held, and an operation's
    status changes only under its payment's lock. In pipeline mode both go out together: one round trip."""
    locking = await conn.execute(
        b"SELECT * FROM payments WHERE id = (SELECT payment_id FROM bank_operations WHERE id = %s) FOR UPDATE",
        (op_id,))
    reading = await conn.execute(
        b"SELECT id, payment_id, refund_id, kind, amount, status, acquirer FROM bank_operations WHERE id = %s",
        (op_id,))
    payment, op = await locking.fetchone(), await reading.fetchone()
    assert payment is not None and op is not None, op_id
    return payment, op


async def pending_for_payment(conn: Conn, payment_id: str, kind: str) -> Row | None:
    return await fetch_one(
        conn,
        # created_at first: failover's attempts can be created within one millisecond, where ids do not sort
        "SELECT * FROM bank_operations WHERE payment_id = %s AND kind = %s ORDER BY created_at DESC, id DESC LIMIT 1",
        (payment_id, kind),
    )


async def acquirers_tried(conn: Conn, payment_id: str) -> list[str]:
    """The acquirers a payment's authorization has been sent to (failover's attempts), oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT acquirer FROM bank_operations WHERE payment_id = %s AND kind = 'authorization'"
        " GROUP BY acquirer ORDER BY min(created_at)",
        (payment_id,),
    )
    return [r["acquirer"] for r in rows]


async def for_refund(conn: Conn, refund_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM bank_operations WHERE refund_id = %s", (refund_id,))


@dataclass(frozen=True)
class Resolution:
    """An operation's final answer as stored: written alone (`resolve`) or by its payment's UPDATE
    (store/payments.py `update`, `resolving=`), which the caller makes under the payment's lock anyway."""

    op_id: str
    status: str
    failure_code: str | None
    at: datetime
    acquirer_reference: str | None = None


def resolve_sql(r: Resolution) -> tuple[str, tuple[Any, ...]]:
    return ("UPDATE bank_operations SET status = %s, failure_code = %s, resolved_at = %s,"
            " acquirer_reference = coalesce(%s, acquirer_reference) WHERE id = %s",
            (r.status, r.failure_code, r.at, r.acquirer_reference, r.op_id))


async def resolve(conn: Conn, op_id: str, status: str, failure_code: str | None, now: datetime,
                  acquirer_reference: str | None = None) -> None:
    sql, params = resolve_sql(Resolution(op_id, status, failure_code, now, acquirer_reference))
    await conn.execute(sql.encode(), params)


async def note_reference(conn: Conn, op_id: str, acquirer_reference: str, next_attempt_at: datetime) -> None:
    """The bank's id of an operation still pending (an authentication awaiting its customer), and when recovery
    should look at it again."""
    await conn.execute(
        "UPDATE bank_operations SET acquirer_reference = %s, next_attempt_at = %s WHERE id = %s AND status = 'pending'",
        (acquirer_reference, next_attempt_at, op_id),
    )


async def claim_due(conn: Conn, now: datetime, limit: int) -> list[Row]:
    return await fetch_all(
        conn,
        "SELECT * FROM bank_operations WHERE status = 'pending' AND next_attempt_at <= %s "
        "ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    )


async def reschedule(conn: Conn, op_id: str, next_attempt_at: datetime) -> None:
    await conn.execute(
        "UPDATE bank_operations SET attempts = attempts + 1, next_attempt_at = %s WHERE id = %s",
        (next_attempt_at, op_id),
    )
