"""Idempotency-key rows: a lease while a request runs, a recovery point per phase, the final response."""

from __future__ import annotations

from datetime import datetime

from paygate.store.db import Conn, Row, Write, fetch_all, fetch_one, run


async def get(conn: Conn, merchant_id: str, key: str) -> Row | None:
    return await fetch_one(
        conn, "SELECT * FROM idempotency_keys WHERE merchant_id = %s AND key = %s", (merchant_id, key)
    )


def insert_write(
    *, merchant_id: str, key: str, method: str, path: str, fingerprint: bytes, lock_s: float,
    recovery_point: str, resource_id: str | None, response: tuple[int, bytes] | None = None,
) -> Write:
    """A key's first row, written by the first phase of its request. A duplicate key fails on the primary
    key when the phase commits (no ON CONFLICT: nobody waits for this statement's result)."""
    status, body = response if response is not None else (None, None)
    return Write(
        "INSERT INTO idempotency_keys (merchant_id, key, method, path, fingerprint, locked_until, recovery_point, "
        "resource_id, response_status, response_body) VALUES (%s, %s, %s, %s, %s, "
        "CASE WHEN %s::int IS NULL THEN now() + make_interval(secs => %s) END, %s, %s, %s, %s)",
        (merchant_id, key, method, path, fingerprint, status, lock_s, recovery_point, resource_id, status, body),
    )


async def insert(
    conn: Conn, *, merchant_id: str, key: str, method: str, path: str, fingerprint: bytes, lock_s: float,
    recovery_point: str, resource_id: str | None, response: tuple[int, bytes] | None = None,
) -> None:
    await run(conn, insert_write(merchant_id=merchant_id, key=key, method=method, path=path, fingerprint=fingerprint,
                                 lock_s=lock_s, recovery_point=recovery_point, resource_id=resource_id,
                                 response=response))


async def insert_finished_if_absent(
    conn: Conn, *, merchant_id: str, key: str, method: str, path: str, fingerprint: bytes, status: int, body: bytes
) -> bool:
    """Store an outcome under a key nobody holds yet; False if another request took the key meanwhile."""
    row = await fetch_one(
        conn,
        "INSERT INTO idempotency_keys (merchant_id, key, method, path, fingerprint, recovery_point, response_status, "
        "response_body) VALUES (%s, %s, %s, %s, %s, 'finished', %s, %s) ON CONFLICT (merchant_id, key) DO NOTHING "
        "RETURNING 1 AS inserted",
        (merchant_id, key, method, path, fingerprint, status, body),
    )
    return row is not None


async def lock_existing(conn: Conn, merchant_id: str, key: str) -> Row | None:
    return await fetch_one(
        conn,
        "SELECT *, extract(epoch FROM (locked_until - now())) AS lock_left_s FROM idempotency_keys "
        "WHERE merchant_id = %s AND key = %s FOR UPDATE",
        (merchant_id, key),
    )


async def take_lease(conn: Conn, merchant_id: str, key: str, lock_s: float) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => %s), updated_at = now() "
        "WHERE merchant_id = %s AND key = %s",
        (lock_s, merchant_id, key),
    )


def checkpoint_write(merchant_id: str, key: str, point: str, resource_id: str | None) -> Write:
    return Write(
        "UPDATE idempotency_keys SET recovery_point = %s, resource_id = %s, updated_at = now() "
        "WHERE merchant_id = %s AND key = %s",
        (point, resource_id, merchant_id, key),
    )


async def checkpoint(conn: Conn, merchant_id: str, key: str, point: str, resource_id: str | None) -> None:
    await run(conn, checkpoint_write(merchant_id, key, point, resource_id))


async def store_response(conn: Conn, merchant_id: str, key: str, status: int, body: bytes) -> None:
    """The key's final answer; the first one stands (migration 0016's function, which the outcome phase's
    function calls too)."""
    await conn.execute(b"SELECT paygate_finish_key(%s, %s, %s, %s)", (merchant_id, key, status, body))


async def release(conn: Conn, merchant_id: str, key: str) -> None:
    """Give the key back after a failure that stores nothing: a fresh start, or a resumable one."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE merchant_id = %s AND key = %s AND recovery_point = 'started' "
        "AND response_status IS NULL",
        (merchant_id, key),
    )
    await conn.execute(
        "UPDATE idempotency_keys SET locked_until = NULL, updated_at = now() "
        "WHERE merchant_id = %s AND key = %s AND response_status IS NULL",
        (merchant_id, key),
    )


async def abandoned(conn: Conn, limit: int) -> list[Row]:
    """Keys whose request stopped after an intent was committed and whose lease has run out."""
    return await fetch_all(
        conn,
        "SELECT * FROM idempotency_keys WHERE response_status IS NULL AND recovery_point <> 'started' "
        "AND (locked_until IS NULL OR locked_until < now()) ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )


async def purge(conn: Conn, older_than: datetime, limit: int = 5000) -> int:
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE created_at < %s "
        "AND (locked_until IS NULL OR locked_until < now()) LIMIT %s)",
        (older_than, limit),
    )
    return cur.rowcount
