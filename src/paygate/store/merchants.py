"""Merchants and their API keys (stored as SHA-256 hashes; the key is shown once)."""

from __future__ import annotations

from paygate.store.db import Conn, Row, fetch_all, fetch_one


async def insert(conn: Conn, *, id: str, name: str, email: str, password_hash: str) -> None:
    await conn.execute(
        "INSERT INTO merchants (id, name, email, password_hash) VALUES (%s, %s, %s, %s)",
        (id, name, email, password_hash),
    )


async def insert_key(
    conn: Conn, *, key_hash: bytes, merchant_id: str, kind: str, hint: str, public_key: str | None = None
) -> None:
    """`public_key`: a publishable key in full (public by design; the integration docs show it)."""
    await conn.execute(
        "INSERT INTO api_keys (key_hash, merchant_id, kind, hint, public_key) VALUES (%s, %s, %s, %s, %s)",
        (key_hash, merchant_id, kind, hint, public_key),
    )


async def publishable_key(conn: Conn, merchant_id: str) -> str | None:
    """The merchant's newest live publishable key in full, if it was kept (keys made before 0005 were not)."""
    row = await fetch_one(
        conn, "SELECT public_key FROM api_keys WHERE merchant_id = %s AND kind = 'publishable' "
        "AND revoked_at IS NULL AND public_key IS NOT NULL ORDER BY created_at DESC LIMIT 1", (merchant_id,))
    return str(row["public_key"]) if row else None


async def by_key_hash(conn: Conn, key_hash: bytes) -> Row | None:
    return await fetch_one(
        conn,
        "SELECT k.merchant_id, k.kind, m.name FROM api_keys k JOIN merchants m ON m.id = k.merchant_id "
        "WHERE k.key_hash = %s AND k.revoked_at IS NULL",
        (key_hash,),
    )


async def by_email(conn: Conn, email: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM merchants WHERE lower(email) = lower(%s)", (email,))


async def by_id(conn: Conn, merchant_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM merchants WHERE id = %s", (merchant_id,))


async def count(conn: Conn) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM merchants")
    return int(row["n"]) if row else 0


async def key_hints(conn: Conn, merchant_id: str) -> list[Row]:
    """The merchant's live API keys as hints (`sk_test_…a1b2`): the keys themselves are not stored."""
    return await fetch_all(
        conn,
        "SELECT kind, hint, created_at FROM api_keys WHERE merchant_id = %s AND revoked_at IS NULL "
        "ORDER BY kind DESC, created_at",
        (merchant_id,),
    )
