"""Dashboard sessions, and the few reads only the browser surfaces need.

A session's id lives only in the merchant's cookie; the table keeps its SHA-256 (`id_hash`), so a
leaked database dump cannot be replayed as logins. The checkout reads an order by id alone (the page is
public: the order id is what the merchant hands its customer), everything else is scoped to a merchant.
"""

from __future__ import annotations

from datetime import datetime

from paygate.store.db import Conn, Row, fetch_all, fetch_one


async def insert(conn: Conn, *, id_hash: bytes, merchant_id: str, csrf_token: str, expires_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO dashboard_sessions (id_hash, merchant_id, csrf_token, expires_at) VALUES (%s, %s, %s, %s)",
        (id_hash, merchant_id, csrf_token, expires_at),
    )


async def get(conn: Conn, id_hash: bytes, now: datetime) -> Row | None:
    """A live session with its merchant's name and email (for the page header)."""
    return await fetch_one(
        conn,
        "SELECT s.merchant_id, s.csrf_token, s.expires_at, m.name, m.email FROM dashboard_sessions s "
        "JOIN merchants m ON m.id = s.merchant_id WHERE s.id_hash = %s AND s.expires_at > %s",
        (id_hash, now),
    )


async def delete(conn: Conn, id_hash: bytes) -> None:
    await conn.execute("DELETE FROM dashboard_sessions WHERE id_hash = %s", (id_hash,))


async def purge_expired(conn: Conn, now: datetime) -> int:
    cur = await conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= %s", (now,))
    return cur.rowcount


async def order_by_id(conn: Conn, order_id: str) -> Row | None:
    """Any merchant's order: the hosted checkout is public and learns the merchant from the order."""
    return await fetch_one(conn, "SELECT * FROM orders WHERE id = %s", (order_id,))


async def key_hints(conn: Conn, merchant_id: str) -> list[Row]:
    """The merchant's live API keys as hints (`sk_test_…a1b2`): the keys themselves are not stored."""
    return await fetch_all(
        conn,
        "SELECT kind, hint, created_at FROM api_keys WHERE merchant_id = %s AND revoked_at IS NULL "
        "ORDER BY kind DESC, created_at",
        (merchant_id,),
    )


async def volume_by_currency(conn: Conn, merchant_id: str) -> list[Row]:
    """Captured and refunded sums per currency: amounts of different currencies never add up."""
    return await fetch_all(
        conn,
        "SELECT currency, sum(amount_captured) AS captured, sum(amount_refunded) AS refunded "
        "FROM payments WHERE merchant_id = %s AND amount_captured > 0 GROUP BY currency ORDER BY currency",
        (merchant_id,),
    )
