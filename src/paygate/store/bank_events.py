"""Bank callbacks received: the primary key on the bank's event id is what makes each one apply at most once.

The row is inserted first, in the transaction that applies the event's effect, so a concurrent duplicate
blocks on the key until the first commits (then finds it) or rolls back (then applies it itself).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from paygate.store.db import Conn, Row, fetch_one

RECEIVED = "received"  # placeholder outcome, replaced before the receiving transaction commits


async def insert(conn: Conn, *, id: str, reference: str, type: str, body: dict[str, Any], now: datetime) -> bool:
    """Claim the event id; False when it was already recorded (a duplicate delivery)."""
    row = await fetch_one(
        conn,
        "INSERT INTO bank_events (id, reference, type, outcome, body, received_at, last_received_at) "
        "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
        (id, reference, type, RECEIVED, orjson.dumps(body).decode(), now, now),
    )
    return row is not None


async def count_duplicate(conn: Conn, event_id: str, now: datetime) -> Row | None:
    """Note one more delivery of an event already recorded; returns its row."""
    return await fetch_one(
        conn,
        "UPDATE bank_events SET duplicates = duplicates + 1, last_received_at = %s WHERE id = %s RETURNING *",
        (now, event_id),
    )


async def set_outcome(conn: Conn, event_id: str, outcome: str, detail: str | None) -> None:
    await conn.execute(
        "UPDATE bank_events SET outcome = %s, detail = %s WHERE id = %s", (outcome, detail, event_id)
    )


async def get(conn: Conn, event_id: str) -> Row | None:
    return await fetch_one(conn, "SELECT * FROM bank_events WHERE id = %s", (event_id,))
