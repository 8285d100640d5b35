"""Failed dashboard logins, counted per email and per client address (both as SHA-256) across every API
process. A row is written *before* the password is checked and deleted when it turns out right, so
parallel guesses cannot all slip past the count, and a crash mid-check counts as a failure."""

from __future__ import annotations

from datetime import datetime

from paygate.store.db import Conn, fetch_all, fetch_one

# The two-int advisory lock space does not overlap the one-bigint space other locks (migrations) use;
# this first int names ours.
_LOCK_CLASS = 0x6C6F_6769  # "logi"


async def lock(conn: Conn, *hashes: bytes) -> None:
    """Serialise attempts on the same email or address until this transaction ends (sorted: no deadlock)."""
    for key in sorted({int.from_bytes(h[:4], "big", signed=True) for h in hashes}):
        await conn.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", (_LOCK_CLASS, key))


async def now(conn: Conn) -> datetime:
    row = await fetch_one(conn, "SELECT now() AS now")
    assert row is not None
    when: datetime = row["now"]
    return when


async def recent(conn: Conn, *, email_hash: bytes | None = None, client_hash: bytes | None = None,
                 window_s: int, limit: int) -> list[datetime]:
    """The newest `limit` failure times within the window for one email or one address, newest first."""
    column, value = ("email_hash", email_hash) if email_hash is not None else ("client_hash", client_hash)
    rows = await fetch_all(
        conn,
        f"SELECT failed_at FROM login_failures WHERE {column} = %s "
        "AND failed_at > now() - make_interval(secs => %s) ORDER BY failed_at DESC LIMIT %s",
        (value, window_s, limit),
    )
    return [r["failed_at"] for r in rows]


async def record(conn: Conn, *, email_hash: bytes, client_hash: bytes) -> None:
    await conn.execute("INSERT INTO login_failures (email_hash, client_hash) VALUES (%s, %s)",
                       (email_hash, client_hash))


async def forget_email(conn: Conn, email_hash: bytes) -> None:
    """A right password clears the email's failures (the address's other failures stay)."""
    await conn.execute("DELETE FROM login_failures WHERE email_hash = %s", (email_hash,))


async def purge_older_than(conn: Conn, window_s: int) -> None:
    await conn.execute("DELETE FROM login_failures WHERE failed_at <= now() - make_interval(secs => %s)",
                       (window_s,))
