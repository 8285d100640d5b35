"""Sending one leased delivery and recording what happened: shared by the worker's loop and by the API's
manual retry, so both go through the same guarded Sender and the same recording rules.

Deliveries are rows created with the event itself (`store.events.emit`), so an event is never lost
between "committed" and "queued". Sending one is three steps, none holding a transaction across the
network: lease the row (one statement), POST (no transaction), record the attempt (usually one
statement). A worker that dies mid-way leaves a lease that simply expires: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import orjson

from paygate import tracing
from paygate.domain import views
from paygate.domain.webhooks import FAILING_DISABLE_AFTER, Attempt, decide, legacy_signature, signing_secrets
from paygate.services.gateway import Gateway, utcnow
from paygate.store import webhooks as store
from paygate.store.db import Conn, Row, transaction
from paygate.webhooks import signing
from paygate.webhooks.sender import Sender

# A lease outlives the longest attempt (15 s) with room to record it; a dead worker's lease expires.
LEASE = timedelta(seconds=30)


def sender_for(gw: Gateway) -> Sender:
    """The Sender this gateway's settings call for (the destination check on unless lifted)."""
    return Sender(allow_private=gw.settings.webhook_private_allowed)


def event_body(row: Row) -> bytes:
    """The event object exactly as GET /v1/events/{id} shows it."""
    return orjson.dumps(views.event({"id": row["event_id"], "type": row["ev_type"],
                                     "created_at": row["ev_created_at"], "data": row["ev_data"]}))


async def attempt(sender: Sender, row: Row, master_key: str) -> Attempt:
    """One signed POST of a leased delivery (no transaction is open meanwhile), in a span of its own whose
    trace the receiver gets in `traceparent` (when tracing is on)."""
    body = event_body(row)
    secrets_ = signing_secrets(row, utcnow(), master_key)
    headers = signing.headers(secrets_, row["event_id"], int(time.time()), body)
    if row.get("legacy_signature"):
        headers["x-webhook-signature"] = legacy_signature(secrets_[0], body)  # the newest secret
    with tracing.span("webhook.deliver", **{"paygate.delivery_id": row["id"], "paygate.event_id": row["event_id"],
                                            "paygate.event_type": row["ev_type"]}):
        return await sender.send(row["url"], body, headers)


async def record_in(
    conn: Conn, leased: Row, result: Attempt, schedule: list[float], *, manual: bool = False
) -> Row:
    """Record an attempt made under the lease `leased["locked_until"]`.

    The common case — the worker still holds its lease — is one conditional UPDATE (plus one on the
    endpoint only when its failure streak changes); anything else (a manual retry, a lease lost, a
    delivery finished meanwhile) takes the row lock and decides from the current row. `conn` may be in
    autocommit or inside the caller's transaction.
    """
    now = utcnow()
    await _endpoint_effects(conn, leased, result, now)
    entry = result.as_json()
    if not manual:
        decision = decide(result, leased["attempt_count"], schedule, now)
        owned = await store.record_if_leased(conn, leased["id"], lease=leased["locked_until"], attempt=entry,
                                             status=decision.status, next_attempt_at=decision.next_attempt_at,
                                             now=now)
        if owned is not None:
            return owned
    async with conn.transaction():
        return await _record_locked(conn, leased, entry, result.ok, manual, now)


def _touches_endpoint(leased: Row, result: Attempt) -> bool:
    # a success changes the endpoint only if it was failing as of the claim (a later streak ends at the next one)
    return not result.ok or leased.get("failing_since", True) is not None


async def _endpoint_effects(conn: Conn, leased: Row, result: Attempt, now: datetime) -> None:
    """The endpoint first: the lock order every writer follows (see store.webhooks)."""
    endpoint_id = leased["endpoint_id"]
    if not _touches_endpoint(leased, result):
        return
    if result.ok:
        await store.endpoint_succeeded(conn, endpoint_id)
    elif result.gone:
        await store.disable_endpoint(conn, endpoint_id, now)
    else:
        await store.endpoint_failed(conn, endpoint_id, result.at, now - FAILING_DISABLE_AFTER)


class Recorder:
    """The worker's `record_in`, batched: attempts that finish while one batch's UPDATE is on its way are
    recorded together by the next, in one statement (store.webhooks.record_many_if_leased). An idle worker's
    batch is one attempt and waits for nothing; a busy one records many per round trip (ADR 0019). The rare
    rest — an endpoint whose failure streak changes, a lease lost meanwhile — goes the way of `record_in`."""

    def __init__(self, gw: Gateway, schedule: list[float]) -> None:
        self.gw, self.schedule = gw, schedule
        self._queued: list[tuple[store.Recorded, asyncio.Future[Row | None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, leased: Row, result: Attempt) -> Row:
        """The delivery's outcome: at least id, endpoint_id, status, attempt_count, next_attempt_at."""
        now = utcnow()
        if _touches_endpoint(leased, result):
            async with self.gw.pool.connection() as conn:
                await _endpoint_effects(conn, leased, result, now)
        entry = result.as_json()
        decision = decide(result, leased["attempt_count"], self.schedule, now)
        done: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._queued.append((store.Recorded(leased["id"], leased["locked_until"], entry, decision.status,
                                            decision.next_attempt_at), done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="deliveries-record")
        owned = await asyncio.shield(done)  # a cancelled sender must not fail the others' batch
        if owned is not None:
            return owned
        async with self.gw.pool.connection() as conn, conn.transaction():
            return await _record_locked(conn, leased, entry, result.ok, False, utcnow())

    async def _flush(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    async with self.gw.pool.connection() as conn:  # autocommit: one statement
                        rows = await store.record_many_if_leased(conn, [item for item, _ in batch], now=utcnow())
                except Exception as exc:  # each sender logs it; the leases run out and the attempts are made again
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for item, done in batch:
                    if not done.done():
                        done.set_result(rows.get(item.delivery_id))
        finally:
            self._flusher = None

    async def aclose(self) -> None:
        """Let the batch on its way finish (the worker is stopping)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


async def _record_locked(conn: Conn, leased: Row, entry: dict[str, Any], ok: bool, manual: bool,
                         now: datetime) -> Row:
    current = await store.lock_delivery(conn, leased["id"])
    assert current is not None
    owner = current["locked_until"] == leased["locked_until"]
    if manual:
        return await store.record(conn, current["id"], attempt=entry, counted=False,
                                  status="succeeded" if ok else "failed", next_attempt_at=None,
                                  clear_lease=owner, now=now)
    # Finished or taken over meanwhile (a manual retry, a deleted endpoint, a lease that ran out): the
    # attempt is history, but the schedule belongs to whoever holds the row now. A success still means
    # the event arrived.
    delivered = ok and current["status"] == "pending"
    return await store.record(
        conn, current["id"], attempt=entry, counted=False, status="succeeded" if delivered else current["status"],
        next_attempt_at=None if delivered else current["next_attempt_at"], clear_lease=owner, now=now)


async def deliver(gw: Gateway, sender: Sender, leased: Row, schedule: list[float]) -> Row:
    """Send a delivery the worker has leased, and record what happened."""
    result = await attempt(sender, leased, gw.settings.secret_key)
    async with gw.pool.connection() as conn:  # autocommit: the usual record is a single statement
        return await record_in(conn, leased, result, schedule)


async def claim(
    gw: Gateway, *, limit: int, per_endpoint: int, in_flight: dict[str, int], schedule: list[float]
) -> list[Row]:
    async with gw.pool.connection() as conn:  # autocommit: the claim is one atomic statement
        now = utcnow()
        return await store.claim(
            conn, now=now, lease_until=now + LEASE, first_due=now - timedelta(seconds=schedule[0]), limit=limit,
            per_endpoint=per_endpoint, in_flight=in_flight, scan=max(100, limit * 4))


async def release(gw: Gateway, leases: list[tuple[str, datetime]]) -> int:
    async with transaction(gw.pool) as conn:
        return await store.release(conn, leases)
