"""Events, and their fan-out into webhook deliveries: both in the transaction of the change (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from paygate.store._sql import Page
from paygate.store.db import Conn, Row, fetch_all, fetch_one

NOTIFY_CHANNEL = "paygate_deliveries"


async def emit(
    conn: Conn, *, event_id: str, merchant_id: str, type: str, object_id: str, data: dict[str, Any],
    now: datetime,
) -> None:
    """Insert the event once per (object, type), a delivery per subscribed endpoint, and wake the workers.

    One statement whose result nobody waits for, so that in pipeline mode it costs no round trip of its own.
    """
    await conn.execute(
        b"SELECT paygate_emit_event(%s, %s, %s, %s, %s::json, %s)",  # migration 0016, shared with the outcome phase
        (event_id, merchant_id, type, object_id, orjson.dumps(data).decode(), now),
    )


async def emit_to_endpoint(
    conn: Conn, *, event_id: str, merchant_id: str, type: str, endpoint_id: str, data: dict[str, Any],
    now: datetime,
) -> Row:
    """An event for one endpoint only (the test webhook): the event, its one delivery, and a wake-up for the
    workers. The event is its own object (`object_id` = its id), so each test is a new event."""
    await conn.execute(
        "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES (%s, %s, %s, %s, %s::json, %s)",
        (event_id, merchant_id, type, event_id, orjson.dumps(data).decode(), now),
    )
    row = await fetch_one(
        conn,
        "INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, next_attempt_at, "
        "created_at, updated_at) VALUES (paygate_id('wd'), %(m)s, %(e)s, %(id)s, %(t)s, %(now)s, %(now)s, %(now)s) "
        "RETURNING *",
        {"m": merchant_id, "e": endpoint_id, "id": event_id, "t": type, "now": now},
    )
    assert row is not None
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}".encode())
    return row


async def get(conn: Conn, merchant_id: str, event_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM events WHERE id = %s AND merchant_id = %s", (event_id, merchant_id))


async def page(
    conn: Conn, merchant_id: str, *, type: str | None = None, created_gte: datetime | None = None,
    created_lt: datetime | None = None, starting_after: str | None = None, limit: int = 10,
) -> list[Row]:
    sql, params = Page(merchant_id).eq("type", type).created(created_gte, created_lt).sql(
        "events", starting_after, limit)
    return await fetch_all(conn, sql, params)


async def purge(conn: Conn, older_than: datetime, limit: int = 5000) -> int:
    """Old events go, with the delivery records that point at them."""
    await conn.execute(
        "DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM events WHERE created_at < %s LIMIT %s)",
        (older_than, limit),
    )
    cur = await conn.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < %s LIMIT %s)", (older_than, limit)
    )
    return cur.rowcount
