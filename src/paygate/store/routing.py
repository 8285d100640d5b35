"""Merchants' routing documents (`merchant_routing`): read and replace."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Json

from paygate.store.db import Conn, Row, fetch_one


async def get(conn: Conn, merchant_id: str) -> Row | None:
    """{document, updated_at}, or None while the merchant has not set a routing."""
    return await fetch_one(conn, "SELECT document, updated_at FROM merchant_routing WHERE merchant_id = %s",
                           (merchant_id,))


async def put(conn: Conn, merchant_id: str, document: dict[str, Any], updated_at: datetime) -> Row:
    row = await fetch_one(
        conn,
        "INSERT INTO merchant_routing (merchant_id, document, updated_at) VALUES (%s, %s, %s) "
        "ON CONFLICT (merchant_id) DO UPDATE SET document = EXCLUDED.document, updated_at = EXCLUDED.updated_at "
        "RETURNING document, updated_at",
        (merchant_id, Json(document), updated_at))
    assert row is not None
    return row
