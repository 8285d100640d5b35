"""Idempotency keys after Stripe and Brandur Leach's atomic phases.

`begin` takes a lease on (merchant, key) or explains why not (replay, 409 in use, 422 reused). Use cases
record a recovery point in the same transaction as each phase's effects (`checkpoint`) and store the
final response in the same transaction as the outcome (`finish`), so a retry after a crash resumes at the
last committed phase and never repeats a side effect.

Keys are scoped by merchant and by who sent them (`Namespace`): a merchant's secret-key requests, its
publishable key's, the hosted checkout's and the dashboard's keys can never collide, so whoever holds a
public key or a checkout link cannot claim (or probe) the keys of the merchant's own server. Everything
this module needs (the fingerprint key, the lease) is passed in; a use case whose response holds a secret
stores a form of it without the secret (`KeyHandle.finish`) and the caller hands `execute` the way back
(`restore`), so this module knows nothing of what a response means.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg_pool import AsyncConnectionPool

from paygate.domain import idempotency as rules
from paygate.errors import IdempotencyError, InvalidRequest, PaygateError
from paygate.services.gateway import Outcome
from paygate.store import idempotency as keys
from paygate.store.db import Conn, Row, Write, run, transaction

Namespace = Literal["secret", "publishable", "checkout", "dashboard"]
# Between a namespace and the client's key: outside the printable ASCII a key is made of, so no key a
# client sends can spell another namespace's stored key. Secret-key requests keep the bare key.
_SEPARATOR = "\u00a7"  # §


def scoped_key(namespace: Namespace, key: str) -> str:
    """The key as stored (and scoped by merchant): `key` for the secret key, `<namespace>§key` otherwise."""
    return key if namespace == "secret" else f"{namespace}{_SEPARATOR}{key}"


# Errors that are outcomes of execution, so they are stored and replayed (API.md §4).
_STORED_ERROR_STATUSES = frozenset({402, 404})


def is_stored_error(err: PaygateError) -> bool:
    if err.code in ("payment_in_flight", "order_payment_in_progress"):  # transient: a retry runs again
        return False
    return err.status in _STORED_ERROR_STATUSES or err.type == "invalid_state_error"


@dataclass
class KeyHandle:
    """A request's hold on its key. A `fresh` key is not in the database yet: its row is inserted by the
    first phase that commits (`checkpoint` or `finish`), in that phase's own transaction — one commit
    less per request. A concurrent duplicate then fails that insert on the primary key and starts over
    (`execute`), finding the key taken."""

    merchant_id: str
    key: str | None
    recovery_point: str = "started"
    resource_id: str | None = None
    fresh: bool = False
    method: str = ""
    path: str = ""
    fingerprint: bytes = b""
    lock_s: float = 0.0

    async def checkpoint(self, conn: Conn, point: str, resource_id: str | None) -> None:
        write = self.checkpoint_write(point, resource_id)
        if write is not None:
            await run(conn, write)
        self.checkpointed(point, resource_id)

    def checkpoint_write(self, point: str, resource_id: str | None) -> Write | None:
        """`checkpoint`'s write, not sent: for a phase that sends it with its own writes in one statement
        (store/intents.py). The caller calls `checkpointed` once that statement has succeeded; until then the
        handle is unchanged, so a failed statement leaves it as it was (a fresh key still not ours to
        release). None without a key."""
        if self.key is None:
            return None
        if self.fresh:
            return keys.insert_write(merchant_id=self.merchant_id, key=self.key, method=self.method, path=self.path,
                                     fingerprint=self.fingerprint, lock_s=self.lock_s, recovery_point=point,
                                     resource_id=resource_id)
        return keys.checkpoint_write(self.merchant_id, self.key, point, resource_id)

    def checkpointed(self, point: str, resource_id: str | None) -> None:
        """The key's row now holds this recovery point (and exists, if it was fresh)."""
        if self.key is not None:
            self.fresh = False
        self.recovery_point, self.resource_id = point, resource_id

    async def finish(self, conn: Conn, outcome: Outcome) -> None:
        if self.key is not None and self.fresh:
            await keys.insert(conn, merchant_id=self.merchant_id, key=self.key, method=self.method, path=self.path,
                              fingerprint=self.fingerprint, lock_s=self.lock_s, recovery_point="finished",
                              resource_id=None, response=(outcome.status, outcome.body))
            self.fresh = False
        elif self.key is not None:
            await keys.store_response(conn, self.merchant_id, self.key, outcome.status, outcome.body)

    async def release(self, pool: AsyncConnectionPool[Conn]) -> None:
        if self.key is not None and not self.fresh:
            async with transaction(pool) as conn:
                await keys.release(conn, self.merchant_id, self.key)


@dataclass(frozen=True)
class Replay:
    outcome: Outcome


async def begin(
    pool: AsyncConnectionPool[Conn], *, merchant_id: str, namespace: Namespace, key: str | None, method: str,
    path: str, body: Any, lock_s: float, fingerprint_key: str,
) -> KeyHandle | Replay:
    if key is None:
        return KeyHandle(merchant_id, None)
    if not rules.valid_key(key):
        raise InvalidRequest("parameter_invalid", "Idempotency-Key must be 1-255 printable ASCII characters.",
                             param="Idempotency-Key")
    key = scoped_key(namespace, key)
    fp = rules.fingerprint(method, path, body, fingerprint_key)
    async with pool.connection() as conn:
        row = await keys.get(conn, merchant_id, key)
        if row is None:
            return KeyHandle(merchant_id, key, fresh=True, method=method, path=path, fingerprint=fp, lock_s=lock_s)
        _same_request(row, method, path, fp)
        if row["response_status"] is not None:  # a replay: one read, no lock
            return Replay(Outcome(row["response_status"], bytes(row["response_body"])))
        async with conn.transaction():
            return await _existing(conn, merchant_id, key, method, path, fp, lock_s)


def _same_request(row: Row, method: str, path: str, fp: bytes) -> None:
    if row["method"] != method or row["path"] != path or bytes(row["fingerprint"]) != fp:
        raise IdempotencyError("idempotency_key_reused",
                               "This Idempotency-Key was already used with a different request.")


async def _existing(
    conn: Conn, merchant_id: str, key: str, method: str, path: str, fp: bytes, lock_s: float
) -> KeyHandle | Replay:
    row = await keys.lock_existing(conn, merchant_id, key)
    if row is None:  # purged between the two statements
        raise IdempotencyError("idempotency_key_in_use", "Retry this request.", status=409, retry_after=1)
    _same_request(row, method, path, fp)
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


async def store_error(pool: AsyncConnectionPool[Conn], handle: KeyHandle, outcome: Outcome) -> bool:
    """Record an error outcome on the key; False if a fresh key turned out to be another request's."""
    if handle.key is None:
        return True
    async with transaction(pool) as conn:
        if handle.fresh:
            return await keys.insert_finished_if_absent(
                conn, merchant_id=handle.merchant_id, key=handle.key, method=handle.method, path=handle.path,
                fingerprint=handle.fingerprint, status=outcome.status, body=outcome.body)
        await keys.store_response(conn, handle.merchant_id, handle.key, outcome.status, outcome.body)
        return True


def _lost_race(err: psycopg.errors.UniqueViolation) -> bool:
    return err.diag.constraint_name == "idempotency_keys_pkey"


async def execute(
    pool: AsyncConnectionPool[Conn], *, merchant_id: str, namespace: Namespace, key: str | None, method: str,
    path: str, body: Any, lock_s: float, fingerprint_key: str, run: Callable[[KeyHandle], Awaitable[Outcome]],
    restore: Callable[[bytes], bytes] | None = None,
) -> tuple[Outcome, bool]:
    """Run a write under its Idempotency-Key: (the outcome, whether it is a replay). Errors propagate,
    stored first when they are outcomes of execution (API.md §4). A replay answers the stored body, passed
    through `restore` when the use case stored another form of it than it answered."""
    for _ in range(3):
        begun = await begin(pool, merchant_id=merchant_id, namespace=namespace, key=key, method=method, path=path,
                            body=body, lock_s=lock_s, fingerprint_key=fingerprint_key)
        if isinstance(begun, Replay):
            stored = begun.outcome
            return Outcome(stored.status, restore(stored.body) if restore else stored.body), True
        try:
            return await run(begun), False
        except psycopg.errors.UniqueViolation as err:
            if not _lost_race(err):
                raise
            continue  # a duplicate got there first: the key exists now, so the next begin() says how
        except PaygateError as err:
            if is_stored_error(err):
                if not await store_error(pool, begun, Outcome.of(err.status, err.body())):
                    continue  # a duplicate holds the key: the next begin() answers for it (409 or replay)
            else:
                await _release_quietly(pool, begun)
            raise
        except BaseException:
            await _release_quietly(pool, begun)
            raise
    raise IdempotencyError("idempotency_key_in_use", "Retry this request.", status=409, retry_after=1)


async def _release_quietly(pool: AsyncConnectionPool[Conn], handle: KeyHandle) -> None:
    with contextlib.suppress(Exception):  # the lease expires by itself; the original error matters more
        await handle.release(pool)
