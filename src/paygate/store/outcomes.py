"""The create's outcome phase as one statement: paygate_conclude_authorization (migration 0016)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from paygate.domain.ids import new_id
from paygate.domain.ledger import Posting
from paygate.store import ledger
from paygate.store._sql import adapt
from paygate.store.bank_ops import Resolution
from paygate.store.db import Conn, Row, fetch_one

_CALL = (
    b"SELECT paygate_conclude_authorization("
    b"%s::text, %s::text, %s::text, %s::timestamptz, %s::jsonb, %s::jsonb, "
    b"%s::text, %s::text, %s::text, %s::timestamptz, "
    b"%s::text, %s::text, %s::text, "
    b"%s::text, %s::json, %s::bigint, %s::bigint, %s::timestamptz, %s::text, %s::text, %s::jsonb, %s::jsonb, "
    b"%s::text, %s::text, %s::json, "
    b"%s::text, %s::text, %s::text[], %s::text[], %s::text[], %s::bigint[], "
    b"%s::text, %s::text, %s::int, %s::bytea) AS outcome"
)


async def conclude_authorization(
    conn: Conn, *, was: Row, acquirer: str, result: str, attempt_code: str | None, now: datetime,
    resolution: Resolution, row: Row, event_type: str, event_data: dict[str, Any], journal: list[Posting],
    key: tuple[str, str] | None, response: tuple[int, bytes],
) -> bool:
    """Apply the outcome if the payment (`was`: as the request committed it) and its operation are unchanged;
    False when they are not (nothing written: the caller takes the ordinary path). `conn` must be in
    autocommit mode and outside a pipeline: the statement is the transaction, and its answer is read."""
    # inside a caller's transaction 'done' would commit only with it: not what the caller is told
    assert conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE, "its own transaction"
    entry_ids, accounts, directions, amounts = ledger.columns(journal)
    key_merchant, key_name = key if key is not None else (None, None)
    got = await fetch_one(conn, _CALL.decode(), (
        was["id"], resolution.op_id, was["status"], was["updated_at"], Jsonb(was["acquirer_attempts"]),
        Jsonb(was["acquirer_references"]),
        acquirer, result, attempt_code, now,
        resolution.status, resolution.failure_code, resolution.acquirer_reference,
        row["status"], adapt(row["status_history"]), row["amount_captured"], row["amount_fee"],
        row["authorization_expires_at"], row["failure_code"], row["failure_message"],
        Jsonb(row["acquirer_attempts"]), Jsonb(row["acquirer_references"]),
        new_id("evt"), event_type, orjson.dumps(event_data).decode(),
        new_id("jrn") if journal else None, "capture", entry_ids, accounts, directions, amounts,
        key_merchant, key_name, response[0], response[1],
    ))
    assert got is not None
    return bool(got["outcome"] == "done")
