"""Orders: what a customer is asked to pay; payments attach to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.store._sql import Page, adapt
from paygate.store.db import Conn, Row, fetch_all, fetch_one

_COLUMNS = ("id", "merchant_id", "amount", "currency", "receipt", "notes", "created_at", "updated_at", "customer",
            "return_url")


async def insert(conn: Conn, values: dict[str, Any]) -> Row:
    row = await fetch_one(
        conn,
        f"INSERT INTO orders ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) RETURNING *",
        [adapt(values.get(c)) for c in _COLUMNS],
    )
    assert row is not None
    return row


async def get(conn: Conn, merchant_id: str, order_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM orders WHERE id = %s AND merchant_id = %s", (order_id, merchant_id))


async def lock(conn: Conn, merchant_id: str, order_id: str) -> Row | None:
    return await fetch_one(
        conn, "SELECT * FROM orders WHERE id = %s AND merchant_id = %s FOR UPDATE", (order_id, merchant_id)
    )


async def payment_in_progress(conn: Conn, order_id: str) -> str | None:
    """A payment of the order that may still take money (in flight or holding funds), if any."""
    row = await fetch_one(
        conn,
        "SELECT id FROM payments WHERE order_id = %s AND status IN ('pending', 'authorized', 'capturing', 'voiding') "
        "LIMIT 1",
        (order_id,),
    )
    return str(row["id"]) if row else None


async def awaiting_authentication(conn: Conn, order_id: str) -> list[str]:
    """The order's payments still waiting for their customer's challenge (§15): they hold nothing."""
    rows = await fetch_all(conn, "SELECT id FROM payments WHERE order_id = %s AND status = 'requires_action'",
                           (order_id,))
    return [str(r["id"]) for r in rows]


async def failed_payments(conn: Conn, order_id: str) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM payments WHERE order_id = %s AND status = 'failed'",
                          (order_id,))
    return int(row["n"]) if row else 0


async def mark_attempted(conn: Conn, order_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE orders SET status = 'attempted', updated_at = %s WHERE id = %s AND status = 'created'",
        (now, order_id),
    )


async def add_paid(conn: Conn, order_id: str, amount: int, now: datetime) -> Row | None:
    """Record a captured payment; returns the order if this made it `paid` just now."""
    return await fetch_one(
        conn,
        "WITH prev AS (SELECT status FROM orders WHERE id = %s FOR UPDATE) "
        "UPDATE orders o SET amount_paid = o.amount_paid + %s, status = 'paid', updated_at = %s FROM prev "
        "WHERE o.id = %s RETURNING o.*, prev.status AS previous_status",
        (order_id, amount, now, order_id),
    )


async def page(
    conn: Conn, merchant_id: str, *, created_gte: datetime | None = None, created_lt: datetime | None = None,
    starting_after: str | None = None, limit: int = 10,
) -> list[Row]:
    sql, params = Page(merchant_id).created(created_gte, created_lt).sql("orders", starting_after, limit)
    return await fetch_all(conn, sql, params)


async def any_merchant(conn: Conn, order_id: str) -> Row | None:
    """Any merchant's order: the hosted checkout is public and learns the merchant from the order."""
    return await fetch_one(conn, "SELECT * FROM orders WHERE id = %s", (order_id,))
