"""Payments: every status change happens on a row locked with FOR UPDATE."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.store import bank_ops
from paygate.store._sql import Page, adapt, set_clause
from paygate.store.db import Conn, Row, Write, fetch_all, fetch_one, run

_UPDATABLE = frozenset({
    "status", "amount_captured", "amount_refunded", "amount_refund_reserved", "amount_fee", "failure_code",
    "failure_message", "authorization_expires_at", "status_history", "updated_at", "acquirer",
    "payment_method",  # gains the id of the card saved with the payment (services/saved_methods.py)
    "amount_disputed", "acquirer_attempts", "acquirer_references",
    "challenge_url",  # the bank's challenge page, once it answered the authentication (§15)
})
_COLUMNS = (
    "id", "merchant_id", "status", "amount", "currency", "capture_method", "method_type", "payment_method",
    "order_id", "customer_id", "description", "metadata", "failure_code", "failure_message",
    "authorization_expires_at", "status_history", "created_at", "updated_at", "acquirer",
    "receipt_email", "customer", "return_url",
)


_DEFAULTS: dict[str, Any] = {
    "amount_captured": 0, "amount_refunded": 0, "amount_refund_reserved": 0, "amount_fee": 0, "failure_code": None,
    "failure_message": None, "authorization_expires_at": None, "amount_disputed": 0, "acquirer_attempts": [],
    "acquirer_references": {"authorization": None, "capture": None, "void": None}, "challenge_url": None,
}


_INSERT = f"INSERT INTO payments ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"


def insert_write(values: dict[str, Any]) -> tuple[Write, Row]:
    """The insert, not sent yet, and the row as it will be stored (built here rather than read back: no
    round trip of its own in a pipeline); `values` must hold every column of `_COLUMNS`."""
    return (Write(_INSERT, tuple(adapt(values.get(c)) for c in _COLUMNS)),
            {**_DEFAULTS, **{c: values.get(c) for c in _COLUMNS}})


async def insert(conn: Conn, values: dict[str, Any]) -> Row:
    """Insert and return the row as stored (`insert_write`)."""
    write, row = insert_write(values)
    await run(conn, write)
    return row


async def get(conn: Conn, merchant_id: str, payment_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM payments WHERE id = %s AND merchant_id = %s", (payment_id, merchant_id))


async def find(conn: Conn, payment_id: str) -> Row | None:
    """By id alone (no merchant): for callers a payment id authenticates, such as a customer's browser (§15)."""
    return await fetch_one(conn, "SELECT * FROM payments WHERE id = %s", (payment_id,))


async def lock(conn: Conn, payment_id: str, merchant_id: str | None = None) -> Row | None:
    if merchant_id is None:
        return await fetch_one(conn, "SELECT * FROM payments WHERE id = %s FOR UPDATE", (payment_id,))
    return await fetch_one(
        conn, "SELECT * FROM payments WHERE id = %s AND merchant_id = %s FOR UPDATE", (payment_id, merchant_id)
    )


async def update(conn: Conn, row: Row, fields: dict[str, Any], *,
                 resolving: bank_ops.Resolution | None = None) -> Row:
    """Update a locked payment and return its new state, merged here rather than read back. `resolving`: one
    of its operations' final answer, written by the same statement (a data-modifying CTE: one statement,
    where the operation's status still changes only under the payment's lock, held by the caller)."""
    cols, params = set_clause(fields, _UPDATABLE)
    sql = f"UPDATE payments SET {cols} WHERE id = %s"
    if resolving is not None:
        op_sql, op_params = bank_ops.resolve_sql(resolving)
        sql, params = f"WITH resolved AS ({op_sql}) {sql}", [*op_params, *params]
    await conn.execute(sql.encode(), [*params, row["id"]])
    return {**row, **fields}


async def page(
    conn: Conn,
    merchant_id: str,
    *,
    status: str | None = None,
    order_id: str | None = None,
    customer_id: str | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
    starting_after: str | None = None,
    limit: int = 10,
    customer: str | None = None,
) -> list[Row]:
    q = Page(merchant_id).eq("status", status).eq("order_id", order_id).eq("customer_id", customer_id).eq(
        "customer", customer)
    sql, params = q.created(created_gte, created_lt).sql("payments", starting_after, limit)
    return await fetch_all(conn, sql, params)


async def expired_authorizations(conn: Conn, now: datetime, limit: int) -> list[Row]:
    return await fetch_all(
        conn,
        "SELECT id, merchant_id FROM payments WHERE status = 'authorized' AND authorization_expires_at <= %s "
        "ORDER BY authorization_expires_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    )


async def challenges_started_before(conn: Conn, before: datetime, limit: int) -> list[Row]:
    """Payments still waiting for their customer's challenge, created before `before` (the timeout scan)."""
    return await fetch_all(
        conn,
        "SELECT id FROM payments WHERE status = 'requires_action' AND created_at <= %s "
        "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (before, limit),
    )


async def stats(conn: Conn, merchant_id: str) -> Row:
    row = await fetch_one(
        conn,
        "SELECT count(*) AS total, "
        "count(*) FILTER (WHERE status IN ('authorized','captured','partially_refunded','refunded','voided',"
        "'capturing','voiding')) AS succeeded, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "coalesce(sum(amount_captured), 0) AS captured FROM payments WHERE merchant_id = %s",
        (merchant_id,),
    )
    assert row is not None
    return row


async def volume_by_currency(conn: Conn, merchant_id: str) -> list[Row]:
    """Captured and refunded sums per currency: amounts of different currencies never add up."""
    return await fetch_all(
        conn,
        "SELECT currency, sum(amount_captured) AS captured, sum(amount_refunded) AS refunded "
        "FROM payments WHERE merchant_id = %s AND amount_captured > 0 GROUP BY currency ORDER BY currency",
        (merchant_id,),
    )


# What the CSV export reads of a payment (domain.exports.row).
_EXPORT_COLUMNS = ("id, order_id, amount, currency, status, method_type, payment_method, amount_captured, "
                   "amount_refunded, customer_id, description, created_at")


async def export_page(
    conn: Conn, merchant_id: str, *, status: str | None = None, payment_id: str | None = None,
    order_id: str | None = None, customer_id: str | None = None, before: str | None = None, limit: int = 1000,
) -> list[Row]:
    """One keyset page of the filtered payments, newest first, after the id `before`: the export reads
    page by page (each an index range scan on (merchant_id[, status], id DESC)), so a million payments
    never sit in memory nor hold one long transaction."""
    q = Page(merchant_id).eq("status", status).eq("id", payment_id).eq("order_id", order_id).eq(
        "customer_id", customer_id)
    where, params = list(q.where), list(q.params)
    if before is not None:
        where.append("id < %s")
        params.append(before)
    params.append(limit)
    return await fetch_all(
        conn, f"SELECT {_EXPORT_COLUMNS} FROM payments WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s", params)


async def daily_volume(conn: Conn, merchant_id: str, since: datetime) -> list[Row]:
    """Per UTC day and currency since `since`: captured sum, approved and declined counts (the home chart)."""
    return await fetch_all(
        conn,
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, currency, "
        "coalesce(sum(amount_captured), 0)::bigint AS captured, "
        "count(*) FILTER (WHERE status IN ('authorized','captured','partially_refunded','refunded','voided',"
        "'capturing','voiding'))::int AS approved, count(*) FILTER (WHERE status = 'failed')::int AS declined "
        "FROM payments WHERE merchant_id = %s AND created_at >= %s GROUP BY 1, 2 ORDER BY 1",
        (merchant_id, since),
    )
