"""Merchants and their API keys (stored as SHA-256 hashes; the key is shown once).

A key authenticates while its `revoked_at` is NULL or in the future: rolling a merchant's keys gives the
old ones a `revoked_at` of now + the grace period. Times are the database's (`now()`), so every API
process agrees on when a key stops working whatever its own clock says.
"""

from __future__ import annotations

from paygate.store.db import Conn, Row, fetch_all, fetch_one

# API processes LISTEN here to forget cached keys at once when a merchant's keys change.
KEYS_CHANNEL = "paygate_api_keys"

_LIVE = "(k.revoked_at IS NULL OR k.revoked_at > now())"


async def insert(conn: Conn, *, id: str, name: str, email: str, password_hash: str) -> None:
    await conn.execute(
        "INSERT INTO merchants (id, name, email, password_hash) VALUES (%s, %s, %s, %s)",
        (id, name, email, password_hash),
    )


async def insert_key(conn: Conn, *, key_hash: bytes, merchant_id: str, kind: str, hint: str,
                     display: str | None = None) -> None:
    """`display`: what the dashboard may show again — a publishable key in full, a secret key's last 4."""
    await conn.execute(
        "INSERT INTO api_keys (key_hash, merchant_id, kind, hint, display) VALUES (%s, %s, %s, %s, %s)",
        (key_hash, merchant_id, kind, hint, display),
    )


async def publishable_key(conn: Conn, merchant_id: str) -> str | None:
    """The merchant's newest live publishable key in full, if it was kept (keys made before 0006 were not)."""
    row = await fetch_one(
        conn, "SELECT display FROM api_keys WHERE merchant_id = %s AND kind = 'publishable' "
        "AND revoked_at IS NULL AND display IS NOT NULL ORDER BY created_at DESC LIMIT 1", (merchant_id,))
    return str(row["display"]) if row else None


async def by_key_hash(conn: Conn, key_hash: bytes) -> Row | None:
    """A live key's merchant and kind, and `expires_in_s`: seconds until it stops working (NULL: never)."""
    return await fetch_one(
        conn,
        "SELECT k.merchant_id, k.kind, m.name, extract(epoch FROM k.revoked_at - now())::float8 AS expires_in_s "
        f"FROM api_keys k JOIN merchants m ON m.id = k.merchant_id WHERE k.key_hash = %s AND {_LIVE}",
        (key_hash,),
    )


async def lock(conn: Conn, merchant_id: str) -> Row | None:
    """The merchant row, locked for this transaction (one key roll at a time per merchant)."""
    return await fetch_one(conn, "SELECT id FROM merchants WHERE id = %s FOR UPDATE", (merchant_id,))


async def expire_live_keys(conn: Conn, merchant_id: str, grace_s: int) -> Row | None:
    """Every live key of the merchant stops working in `grace_s` seconds (0: now), or sooner if an earlier
    roll already said so. Returns when that is (`expires_at`, the latest of them) or None if none was live."""
    return await fetch_one(
        conn,
        "WITH done AS (UPDATE api_keys k SET revoked_at = least(coalesce(k.revoked_at, 'infinity'), "
        f"now() + make_interval(secs => %s)) WHERE k.merchant_id = %s AND {_LIVE} RETURNING k.revoked_at) "
        "SELECT max(revoked_at) AS expires_at FROM done HAVING count(*) > 0",
        (grace_s, merchant_id),
    )


async def notify_keys_changed(conn: Conn, merchant_id: str) -> None:
    """Delivered at commit to every listening API process (so no cached key outlives a roll)."""
    await conn.execute("SELECT pg_notify(%s, %s)", (KEYS_CHANNEL, merchant_id))


async def by_email(conn: Conn, email: str) -> Row | None:
    """Case-insensitive, like the unique index on lower(email) (which this lookup uses)."""
    return await fetch_one(conn, "SELECT * FROM merchants WHERE lower(email) = lower(%s)", (email,))


async def by_id(conn: Conn, merchant_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM merchants WHERE id = %s", (merchant_id,))


async def count(conn: Conn) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM merchants")
    return int(row["n"]) if row else 0


async def key_hints(conn: Conn, merchant_id: str) -> list[Row]:
    """The merchant's live API keys as hints (`sk_test_…a1b2`): the keys themselves are not stored.
    Newest first per kind; `revoked_at` is set on keys in their grace period after a roll; `display` is the
    publishable key itself or the secret key's last 4 characters (NULL for keys made before migration 0006)."""
    return await fetch_all(
        conn,
        "SELECT k.kind, k.hint, k.display, k.created_at, k.revoked_at FROM api_keys k "
        f"WHERE k.merchant_id = %s AND {_LIVE} "
        "ORDER BY k.kind DESC, k.created_at DESC",
        (merchant_id,),
    )
