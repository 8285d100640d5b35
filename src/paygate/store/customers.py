"""Customers (API.md §16): every statement on the customers table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.store._sql import Page, adapt, set_clause
from paygate.store.db import Conn, Row, fetch_all, fetch_one

_COLUMNS = ("id", "merchant_id", "email", "name", "description", "metadata", "created_at", "updated_at")
_UPDATABLE = frozenset({"email", "name", "description", "metadata", "updated_at", "deleted_at"})


async def insert(conn: Conn, values: dict[str, Any]) -> Row:
    cols = ", ".join(_COLUMNS)
    marks = ", ".join(["%s"] * len(_COLUMNS))
    row = await fetch_one(conn, f"INSERT INTO customers ({cols}) VALUES ({marks}) RETURNING *",
                          [adapt(values.get(c)) for c in _COLUMNS])
    assert row is not None
    return row


async def get(conn: Conn, merchant_id: str, customer_id: str) -> Row | None:
    """A live customer of the merchant's (a deleted one is as unknown as a foreign one)."""
    return await fetch_one(
        conn, "SELECT * FROM customers WHERE id = %s AND merchant_id = %s AND deleted_at IS NULL",
        (customer_id, merchant_id))


async def lock(conn: Conn, merchant_id: str, customer_id: str) -> Row | None:
    return await fetch_one(
        conn, "SELECT * FROM customers WHERE id = %s AND merchant_id = %s AND deleted_at IS NULL FOR UPDATE",
        (customer_id, merchant_id))


async def lock_shared(conn: Conn, merchant_id: str, customer_id: str) -> Row | None:
    """A live customer, held against a concurrent delete until the caller's transaction ends (saving a card
    for it: a delete waits, or the save sees the customer deleted and stops)."""
    return await fetch_one(
        conn, "SELECT * FROM customers WHERE id = %s AND merchant_id = %s AND deleted_at IS NULL FOR SHARE",
        (customer_id, merchant_id))


async def update(conn: Conn, customer_id: str, fields: dict[str, Any]) -> Row:
    cols, params = set_clause(fields, _UPDATABLE)
    row = await fetch_one(conn, f"UPDATE customers SET {cols} WHERE id = %s RETURNING *", [*params, customer_id])
    assert row is not None
    return row


async def erase(conn: Conn, customer_id: str, now: datetime) -> None:
    """Deleted: the row stays (ids may point at it), the personal data goes."""
    await conn.execute(
        "UPDATE customers SET deleted_at = %s, updated_at = %s, email = NULL, name = NULL, description = NULL, "
        "metadata = '{}' WHERE id = %s", (now, now, customer_id))


async def page(
    conn: Conn, merchant_id: str, *, email: str | None = None, search: str | None = None,
    created_gte: datetime | None = None, created_lt: datetime | None = None, starting_after: str | None = None,
    limit: int = 10,
) -> list[Row]:
    """Newest first. `email`: exact, case-insensitive (the API's filter); `search`: a case-insensitive
    substring of the email or the name (the dashboard's search box)."""
    q = Page(merchant_id).created(created_gte, created_lt)
    q.where.append("deleted_at IS NULL")
    if email is not None:
        q.where.append("lower(email) = lower(%s)")
        q.params.append(email)
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q.where.append("(email ILIKE %s OR name ILIKE %s)")
        q.params.extend([like, like])
    sql, params = q.sql("customers", starting_after, limit)
    return await fetch_all(conn, sql, params)
