"""psycopg's JSON through orjson (store/db.py, decision 0022): values round-trip unchanged through json and
jsonb, and the text a `json` column keeps is orjson's (compact UTF-8)."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg.types.json import Json

from paygate.services.gateway import Gateway

VALUE: dict[str, Any] = {"note": "café ✓", "n": 99_999_999, "ok": True, "none": None,
                         "history": [{"status": "pending", "at": "2026-01-01T00:00:00.000Z"}],
                         "nested": {"b": [], "a": {}}}


async def test_json_and_jsonb_round_trip_through_orjson(gw: Gateway) -> None:
    async with gw.pool.connection() as conn:
        cur = await conn.execute(b"SELECT %s::json AS j, %s::jsonb AS b, %s::json::text AS t",
                                 (Json(VALUE), Json(VALUE), Json(VALUE)))
        row = await cur.fetchone()
    assert row is not None
    assert row["j"] == VALUE and row["b"] == VALUE
    assert list(row["j"]) == list(VALUE)  # json keeps the key order it was given
    assert row["t"] == orjson.dumps(VALUE).decode()
