"""Webhook endpoints (the merchant's configuration) and the delivery of events to them.

Deliveries are rows created with the event itself (`store.events.emit`), so an event is never lost
between "committed" and "queued". Sending one is three steps, none holding a transaction across the
network: lease the row (one statement), POST (no transaction), record the attempt (usually one
statement). A worker that dies mid-way leaves a lease that simply expires: at least once, never lost.

Semantics the contract leaves to us (docs/webhooks.md):
- A disabled endpoint receives nothing: events emitted while it is disabled are not queued for it, and
  deliveries queued before it was disabled wait (their schedule paused) until it is enabled again.
- A deleted endpoint's pending deliveries end `failed`.
- A manual retry runs in the request: it waits for any attempt in flight on the delivery, makes one
  attempt at once, and its outcome becomes the delivery's status (`succeeded` or `failed`); it does
  not count against, and ends, the automatic schedule.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from paygate.config import get_settings
from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.domain.retry import jittered
from paygate.errors import InvalidState, NotFound
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import webhooks as store
from paygate.store.db import Conn, Row, transaction
from paygate.webhooks import signing
from paygate.webhooks.sender import Attempt, Sender

EVENT_TYPES = (
    "payment.pending", "payment.authorized", "payment.captured", "payment.failed", "payment.voided",
    "payment.expired", "refund.succeeded", "refund.failed", "order.paid",
)
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
# An endpoint whose every attempt has failed for this long is disabled (API.md §8).
FAILING_DISABLE_AFTER = timedelta(days=5)
# After rotate_secret the previous secret keeps signing for this long, beside the new one.
PREVIOUS_SECRET_TTL = timedelta(hours=24)
# A lease outlives the longest attempt (15 s) with room to record it; a dead worker's lease expires.
LEASE = timedelta(seconds=30)
# A manual retry waits at most this long for an attempt in flight; a lease still held after that
# belongs to a worker that died (a live attempt ends within the 15 s timeout), so it is taken over.
MANUAL_WAIT_S = 16.0


# --- views ---------------------------------------------------------------------------------------------

def endpoint_view(row: Row, *, secret: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": row["id"],
        "object": "webhook_endpoint",
        "url": row["url"],
        "enabled_events": list(row["enabled_events"]),
        "description": row["description"],
        "disabled": row["disabled"],
        "created_at": views.ts(row["created_at"]),
        "updated_at": views.ts(row["updated_at"]),
    }
    if secret:
        obj["secret"] = signing.derive(row["secret"], get_settings().secret_key)
    return obj


def delivery_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "webhook_delivery",
        "endpoint_id": row["endpoint_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": views.ts(row["next_attempt_at"]),
        "created_at": views.ts(row["created_at"]),
    }


# --- pure rules ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """Where one recorded attempt leaves its delivery."""

    status: str
    next_attempt_at: datetime | None


def decide(attempt: Attempt, attempts_before: int, schedule: list[float], now: datetime) -> Decision:
    """The automatic schedule: success ends it; 410 or the last scheduled attempt fails it; otherwise the
    next delay of the schedule with ±20 % jitter, or the receiver's Retry-After if that is longer."""
    if attempt.ok:
        return Decision("succeeded", None)
    made = attempts_before + 1
    if attempt.gone or made >= len(schedule):
        return Decision("failed", None)
    delay = jittered(schedule[made])
    if attempt.retry_after_s is not None:
        delay = max(delay, attempt.retry_after_s)
    return Decision("pending", now + timedelta(seconds=delay))


def signing_secrets(row: Row, now: datetime) -> list[str]:
    """The current secret, and the previous one while its 24 h after a rotation last."""
    seeds = [row["secret"]]
    expires = row.get("previous_secret_expires_at")
    if row.get("previous_secret") and expires is not None and expires > now:
        seeds.append(row["previous_secret"])
    key = get_settings().secret_key
    return [signing.derive(seed, key) for seed in seeds]


def event_body(row: Row) -> bytes:
    """The event object exactly as GET /v1/events/{id} shows it."""
    return orjson.dumps(views.event({"id": row["event_id"], "type": row["ev_type"],
                                     "created_at": row["ev_created_at"], "data": row["ev_data"]}))


# --- sending and recording (worker and manual retry) ---------------------------------------------------

async def attempt(sender: Sender, row: Row) -> Attempt:
    """One signed POST of a leased delivery (no transaction is open meanwhile)."""
    body = event_body(row)
    headers = signing.headers(signing_secrets(row, utcnow()), row["event_id"], int(time.time()), body)
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
    endpoint_id = leased["endpoint_id"]
    # The endpoint first: the lock order every writer follows (see store.webhooks).
    if result.ok:
        if leased.get("failing_since", True) is not None:  # as of the claim; a later streak ends at the next success
            await store.endpoint_succeeded(conn, endpoint_id)
    elif result.gone:
        await store.disable_endpoint(conn, endpoint_id, now)
    else:
        await store.endpoint_failed(conn, endpoint_id, result.at, now - FAILING_DISABLE_AFTER)
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
    result = await attempt(sender, leased)
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


# --- API use cases -------------------------------------------------------------------------------------

def _sealed(outcome: Outcome, row: Row) -> Outcome:
    """The response as stored for idempotent replay: the secret replaced by its seed, so the database
    holds no usable secret; `signing.unseal` restores the exact bytes on replay."""
    secret = signing.derive(row["secret"], get_settings().secret_key)
    return Outcome(outcome.status, outcome.body.replace(secret.encode(), signing.sealed(row["secret"]).encode()))


async def create_endpoint(
    gw: Gateway, who: Principal, *, url: str, enabled_events: list[str], description: str | None, key: KeyHandle
) -> Outcome:
    now = utcnow()
    async with transaction(gw.pool) as conn:
        row = await store.insert_endpoint(conn, {
            "id": new_id("we"), "merchant_id": who.merchant_id, "url": url, "enabled_events": enabled_events,
            "description": description, "secret": signing.new_seed(), "created_at": now, "updated_at": now,
        })
        outcome = Outcome.of(201, endpoint_view(row, secret=True))
        await key.finish(conn, _sealed(outcome, row))
    return outcome


async def retrieve_endpoint(gw: Gateway, who: Principal, endpoint_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        row = await store.get_endpoint(conn, who.merchant_id, endpoint_id)
    if row is None:
        raise NotFound("webhook_endpoint", endpoint_id)
    return endpoint_view(row)


async def update_endpoint(
    gw: Gateway, who: Principal, endpoint_id: str, changes: dict[str, Any], key: KeyHandle
) -> Outcome:
    """PATCH: only what differs is written; re-enabling starts a fresh failure streak and wakes the workers
    for the deliveries that waited."""
    async with transaction(gw.pool) as conn:
        row = await _locked(conn, who, endpoint_id)
        fields = {k: v for k, v in changes.items() if row[k] != v}
        if fields.get("disabled") is False:
            fields["failing_since"] = None
        if fields:
            fields["updated_at"] = utcnow()
            row = await store.update_endpoint(conn, endpoint_id, fields)
            if fields.get("disabled") is False:
                await store.notify(conn)
        outcome = Outcome.of(200, endpoint_view(row))
        await key.finish(conn, outcome)
    return outcome


async def delete_endpoint(gw: Gateway, who: Principal, endpoint_id: str, key: KeyHandle) -> Outcome:
    """Soft delete (deliveries keep pointing at it); what it still had pending ends `failed`."""
    async with transaction(gw.pool) as conn:
        await _locked(conn, who, endpoint_id)
        now = utcnow()
        await store.update_endpoint(conn, endpoint_id, {"deleted": True, "updated_at": now})
        await store.fail_pending_of_endpoint(conn, endpoint_id, now)
        outcome = Outcome.of(200, {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True})
        await key.finish(conn, outcome)
    return outcome


async def rotate_secret(gw: Gateway, who: Principal, endpoint_id: str, key: KeyHandle) -> Outcome:
    """A new secret; the one it replaces keeps signing for 24 h (an older previous one stops at once)."""
    async with transaction(gw.pool) as conn:
        row = await _locked(conn, who, endpoint_id)
        now = utcnow()
        row = await store.update_endpoint(conn, endpoint_id, {
            "secret": signing.new_seed(), "previous_secret": row["secret"],
            "previous_secret_expires_at": now + PREVIOUS_SECRET_TTL, "updated_at": now,
        })
        outcome = Outcome.of(200, endpoint_view(row, secret=True))
        await key.finish(conn, _sealed(outcome, row))
    return outcome


async def retrieve_delivery(gw: Gateway, who: Principal, delivery_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        row = await store.get_delivery(conn, who.merchant_id, delivery_id)
    if row is None:
        raise NotFound("webhook_delivery", delivery_id)
    return delivery_view(row)


async def retry_delivery(
    gw: Gateway, who: Principal, delivery_id: str, key: KeyHandle, sender: Sender | None = None
) -> Outcome:
    """Manual retry: one extra attempt now, in this request; its outcome is the delivery's status."""
    leased = await _lease_for_manual(gw, who, delivery_id)
    try:
        async with transaction(gw.pool) as conn:  # the key is taken before anything is sent
            await key.checkpoint(conn, "retry_started", delivery_id)
        if leased["endpoint_deleted"]:
            raise InvalidState("endpoint_deleted", f"The delivery's endpoint {leased['endpoint_id']} was deleted.")
        if leased["endpoint_disabled"]:
            raise InvalidState("endpoint_disabled",
                               f"The delivery's endpoint {leased['endpoint_id']} is disabled; enable it first.")
        if sender is None:
            async with Sender() as own:
                result = await attempt(own, leased)
        else:
            result = await attempt(sender, leased)
    except BaseException:
        await release(gw, [(leased["id"], leased["locked_until"])])
        raise
    async with transaction(gw.pool) as conn:
        row = await record_in(conn, leased, result, [], manual=True)
        outcome = Outcome.of(200, delivery_view(row))
        await key.finish(conn, outcome)
    return outcome


async def _lease_for_manual(gw: Gateway, who: Principal, delivery_id: str) -> Row:
    deadline = time.monotonic() + MANUAL_WAIT_S
    while True:
        async with transaction(gw.pool) as conn:
            now = utcnow()
            if await store.get_delivery(conn, who.merchant_id, delivery_id) is None:
                raise NotFound("webhook_delivery", delivery_id)
            # past the deadline a remaining lease is a dead worker's: take it over
            take_over = time.monotonic() >= deadline
            row = await store.lease_one(conn, who.merchant_id, delivery_id, now=now, lease_until=now + LEASE,
                                        take_over=take_over)
        if row is not None:
            return row
        await asyncio.sleep(0.1)  # an attempt is in flight; it ends (and is recorded) within seconds


async def _locked(conn: Conn, who: Principal, endpoint_id: str) -> Row:
    row = await store.lock_endpoint(conn, who.merchant_id, endpoint_id)
    if row is None:
        raise NotFound("webhook_endpoint", endpoint_id)
    return row
