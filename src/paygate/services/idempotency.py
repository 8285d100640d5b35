"""Idempotency keys after Stripe and Brandur Leach's atomic phases.

`begin` takes a lease on (merchant, key) or explains why not (replay, 409 in use, 422 reused). Use cases
record a recovery point in the same transaction as each phase's effects (`checkpoint`) and store the
final response in the same transaction as the outcome (`finish`), so a retry after a crash resumes at the
last committed phase and never repeats a side effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from paygate.domain import idempotency as rules
from paygate.errors import IdempotencyError, InvalidRequest, PaygateError
from paygate.services.gateway import Outcome
from paygate.store import idempotency as keys
from paygate.store.db import Conn, transaction

# Errors that are outcomes of execution, so they are stored and replayed (API.md §4).
_STORED_ERROR_STATUSES = frozenset({402, 404})


def is_stored_error(err: PaygateError) -> bool:
    if err.code in ("payment_in_flight", "order_payment_in_progress"):  # transient: a retry runs again
        return False
    return err.status in _STORED_ERROR_STATUSES or err.type == "invalid_state_error"


@dataclass
class KeyHandle:
    merchant_id: str
    key: str | None
    recovery_point: str = "started"
    resource_id: str | None = None

    async def checkpoint(self, conn: Conn, point: str, resource_id: str | None) -> None:
        if self.key is not None:
            await keys.checkpoint(conn, self.merchant_id, self.key, point, resource_id)
        self.recovery_point, self.resource_id = point, resource_id

    async def finish(self, conn: Conn, outcome: Outcome) -> None:
        if self.key is not None:
            await keys.store_response(conn, self.merchant_id, self.key, outcome.status, outcome.body)

    async def release(self, pool: AsyncConnectionPool[Conn]) -> None:
        if self.key is not None:
            async with transaction(pool) as conn:
                await keys.release(conn, self.merchant_id, self.key)


@dataclass(frozen=True)
class Replay:
    outcome: Outcome


async def begin(
    pool: AsyncConnectionPool[Conn], *, merchant_id: str, key: str | None, method: str, path: str, body: Any,
    lock_s: float,
) -> KeyHandle | Replay:
    if key is None:
        return KeyHandle(merchant_id, None)
    if not rules.valid_key(key):
        raise InvalidRequest("parameter_invalid", "Idempotency-Key must be 1-255 printable ASCII characters.",
                             param="Idempotency-Key")
    fp = rules.fingerprint(method, path, body)
    async with pool.connection() as conn:
        # The common case, a new key, is one autocommitted statement.
        if await keys.try_insert(conn, merchant_id=merchant_id, key=key, method=method, path=path,
                                 fingerprint=fp, lock_s=lock_s):
            return KeyHandle(merchant_id, key)
        async with conn.transaction():
            return await _existing(conn, merchant_id, key, method, path, fp, lock_s)


async def _existing(
    conn: Conn, merchant_id: str, key: str, method: str, path: str, fp: bytes, lock_s: float
) -> KeyHandle | Replay:
    row = await keys.lock_existing(conn, merchant_id, key)
    if row is None:  # purged between the two statements
        raise IdempotencyError("idempotency_key_in_use", "Retry this request.", status=409, retry_after=1)
    if row["method"] != method or row["path"] != path or bytes(row["fingerprint"]) != fp:
        raise IdempotencyError(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request.",
        )
    if row["response_status"] is not None:
        return Replay(Outcome(row["response_status"], bytes(row["response_body"])))
    left = row["lock_left_s"]
    if left is not None and left > 0:
        raise IdempotencyError(
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still executing.",
            status=409,
            retry_after=max(1, math.ceil(float(left))),
        )
    await keys.take_lease(conn, merchant_id, key, lock_s)
    return KeyHandle(merchant_id, key, row["recovery_point"], row["resource_id"])


async def store_error(pool: AsyncConnectionPool[Conn], handle: KeyHandle, outcome: Outcome) -> None:
    if handle.key is not None:
        async with transaction(pool) as conn:
            await keys.store_response(conn, handle.merchant_id, handle.key, outcome.status, outcome.body)
