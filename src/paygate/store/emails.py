"""The email outbox: rows written in the transaction of the change they report, leased and sent by the
worker (the same claim/lease/record pattern as webhook deliveries, store.webhooks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from paygate.store.db import Conn, Row, fetch_all, fetch_one


async def enqueue(
    conn: Conn, *, email_id: str, merchant_id: str, kind: str, object_id: str, recipient: str,
    data: dict[str, Any], now: datetime,
) -> None:
    """Queue an email; a receipt at most once per (object, kind). The merchant's name is taken here, so
    the statement reads nothing back and costs no round trip of its own in pipeline mode."""
    await conn.execute(
        b"INSERT INTO emails (id, merchant_id, kind, object_id, recipient, data, next_attempt_at, created_at, "
        b"updated_at) SELECT %(id)s, m.id, %(k)s, %(o)s, %(r)s, %(d)s::jsonb || jsonb_build_object('merchant_name', "
        b"m.name), %(now)s, %(now)s, %(now)s FROM merchants m WHERE m.id = %(m)s "
        b"ON CONFLICT (object_id, kind) WHERE kind <> 'checkout_link' DO NOTHING",
        {"id": email_id, "m": merchant_id, "k": kind, "o": object_id, "r": recipient,
         "d": orjson.dumps(data).decode(), "now": now},
    )


async def get(conn: Conn, merchant_id: str, email_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM emails WHERE id = %s AND merchant_id = %s", (email_id, merchant_id))


async def for_object(conn: Conn, object_id: str) -> list[Row]:
    return await fetch_all(conn, "SELECT * FROM emails WHERE object_id = %s ORDER BY id", (object_id,))


async def claim(conn: Conn, *, now: datetime, lease_until: datetime, first_due: datetime, limit: int) -> list[Row]:
    """Lease up to `limit` due emails (FOR UPDATE SKIP LOCKED: two workers never take the same one). Due:
    pending, its time come (a first attempt also waits `first_due`, the schedule's first delay), no live
    lease."""
    return await fetch_all(
        conn,
        "UPDATE emails e SET locked_until = %(lease)s FROM (SELECT id FROM emails "
        "  WHERE status = 'pending' AND next_attempt_at <= %(now)s "
        "  AND (attempt_count > 0 OR next_attempt_at <= %(first_due)s) "
        "  AND (locked_until IS NULL OR locked_until <= %(now)s) "
        "  ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS picked "
        "WHERE e.id = picked.id RETURNING e.*",
        {"lease": lease_until, "now": now, "first_due": first_due, "limit": limit},
    )


async def record_if_leased(
    conn: Conn, email_id: str, *, lease: datetime, attempt: dict[str, Any], status: str,
    next_attempt_at: datetime | None, now: datetime,
) -> Row | None:
    """Record an attempt made under `lease`; None if the lease was lost meanwhile (another worker took the
    row over after it ran out: the attempt is then theirs to record, and the message may arrive twice,
    recognisably, with one Message-ID)."""
    return await fetch_one(
        conn,
        "UPDATE emails SET attempts = attempts || jsonb_build_array(%s::jsonb), attempt_count = attempt_count + 1, "
        "status = %s, next_attempt_at = %s, locked_until = NULL, updated_at = %s, "
        "sent_at = CASE WHEN %s = 'sent' THEN %s ELSE sent_at END "
        "WHERE id = %s AND locked_until = %s AND status = 'pending' RETURNING *",
        (orjson.dumps(attempt).decode(), status, next_attempt_at, now, status, now, email_id, lease),
    )


async def skip_due(conn: Conn, *, now: datetime, limit: int) -> int:
    """No SMTP server configured: what is due is recorded as skipped rather than left to pile up."""
    cur = await conn.execute(
        "UPDATE emails SET status = 'skipped', next_attempt_at = NULL, updated_at = %(now)s WHERE id IN "
        "(SELECT id FROM emails WHERE status = 'pending' AND next_attempt_at <= %(now)s "
        " AND (locked_until IS NULL OR locked_until <= %(now)s) LIMIT %(limit)s FOR UPDATE SKIP LOCKED)",
        {"now": now, "limit": limit},
    )
    return cur.rowcount


async def release(conn: Conn, leases: list[tuple[str, datetime]]) -> int:
    """Give back leases whose attempt never ran (worker stopping)."""
    if not leases:
        return 0
    cur = await conn.execute(
        "UPDATE emails e SET locked_until = NULL FROM unnest(%s::text[], %s::timestamptz[]) AS l(id, lease) "
        "WHERE e.id = l.id AND e.locked_until = l.lease",
        ([i for i, _ in leases], [t for _, t in leases]),
    )
    return cur.rowcount


async def purge(conn: Conn, older_than: datetime, limit: int = 5000) -> int:
    """Finished emails go after the retention (they hold customers' addresses); pending ones never do."""
    cur = await conn.execute(
        "DELETE FROM emails WHERE id IN (SELECT id FROM emails WHERE status <> 'pending' AND created_at < %s "
        "LIMIT %s)", (older_than, limit))
    return cur.rowcount
