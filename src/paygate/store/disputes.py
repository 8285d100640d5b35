"""Disputes (API.md §17): every status change happens on the dispute's row, locked after its payment's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.store._sql import Page, set_clause
from paygate.store.db import Conn, Row, fetch_all, fetch_one

_UPDATABLE = frozenset({"status", "evidence_text", "evidence_submitted_at", "updated_at"})


async def insert(conn: Conn, values: dict[str, Any]) -> Row | None:
    """None when the bank's dispute is already recorded (a duplicate callback under another event id)."""
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    return await fetch_one(
        conn, f"INSERT INTO disputes ({cols}) VALUES ({marks}) ON CONFLICT (acquirer, bank_dispute_id) DO NOTHING "
        "RETURNING *", list(values.values()))


async def get(conn: Conn, merchant_id: str, dispute_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM disputes WHERE id = %s AND merchant_id = %s",
                           (dispute_id, merchant_id))


async def lock(conn: Conn, dispute_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM disputes WHERE id = %s FOR UPDATE", (dispute_id,))


async def lock_by_bank_id(conn: Conn, acquirer: str, bank_dispute_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM disputes WHERE acquirer = %s AND bank_dispute_id = %s FOR UPDATE",
                           (acquirer, bank_dispute_id))


async def update(conn: Conn, row: Row, fields: dict[str, Any]) -> Row:
    cols, params = set_clause(fields, _UPDATABLE)
    await conn.execute(f"UPDATE disputes SET {cols} WHERE id = %s".encode(), [*params, row["id"]])
    return {**row, **fields}


async def page(conn: Conn, merchant_id: str, *, payment_id: str | None, status: str | None,
               created_gte: datetime | None = None, created_lt: datetime | None = None,
               starting_after: str | None = None, limit: int = 10) -> list[Row]:
    sql, params = Page(merchant_id).eq("payment_id", payment_id).eq("status", status).created(
        created_gte, created_lt).sql("disputes", starting_after, limit)
    return await fetch_all(conn, sql, params)
