"""Dashboard sessions, and the few reads only the browser surfaces need.

A session's id lives only in the merchant's cookie; the table keeps its SHA-256 (`id_hash`), so a
leaked database dump cannot be replayed as logins. The checkout reads an order by id alone (the page is
public: the order id is what the merchant hands its customer), everything else is scoped to a merchant.
"""

from __future__ import annotations

from datetime import datetime

from paygate.store.db import Conn, Row, fetch_one


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
