"""Refunds; the amount they reserve lives on the payment row, so it is guarded by the same lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.store._sql import Page, adapt, set_clause
from paygate.store.db import Conn, Row, fetch_all, fetch_one

_COLUMNS = ("id", "merchant_id", "payment_id", "amount", "currency", "status", "reason", "metadata",
            "created_at", "updated_at")
_UPDATABLE = frozenset({"status", "failure_code", "updated_at", "acquirer_reference"})


async def insert(conn: Conn, values: dict[str, Any]) -> Row:
    row = await fetch_one(
        conn,
        f"INSERT INTO refunds ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) RETURNING *",
        [adapt(values.get(c)) for c in _COLUMNS],
    )
    assert row is not None
    return row


async def get(conn: Conn, merchant_id: str, refund_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM refunds WHERE id = %s AND merchant_id = %s", (refund_id, merchant_id))


async def lock(conn: Conn, refund_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM refunds WHERE id = %s FOR UPDATE", (refund_id,))


async def update(conn: Conn, refund_id: str, fields: dict[str, Any]) -> Row:
    cols, params = set_clause(fields, _UPDATABLE)
    row = await fetch_one(conn, f"UPDATE refunds SET {cols} WHERE id = %s RETURNING *", [*params, refund_id])
    assert row is not None
    return row


async def page(
    conn: Conn,
    merchant_id: str,
    *,
    payment_id: str | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
    starting_after: str | None = None,
    limit: int = 10,
) -> list[Row]:
    q = Page(merchant_id).eq("payment_id", payment_id).created(created_gte, created_lt)
    sql, params = q.sql("refunds", starting_after, limit)
    return await fetch_all(conn, sql, params)
