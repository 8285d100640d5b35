"""The merchant's webhook use cases: endpoints (create, read, update, delete, rotate the secret) and
deliveries (read, retry by hand). Sending and recording an attempt lives in `worker.attempts`, the rules
in `domain.webhooks`; every key comes from `gw.settings`.

Semantics the contract leaves to us (docs/webhooks.md):
- A disabled endpoint receives nothing: events emitted while it is disabled are not queued for it, and
  deliveries queued before it was disabled wait (their schedule paused) until it is enabled again.
- A deleted endpoint's pending deliveries end `failed`.
- A test webhook (`send_test`) is one event and one delivery for the endpoint asked for; a disabled
  endpoint is refused (409 `endpoint_disabled`) rather than sent to.
- A manual retry runs in the request: it waits for any attempt in flight on the delivery, makes one
  attempt at once, and its outcome becomes the delivery's status (`succeeded` or `failed`); it does
  not count against, and ends, the automatic schedule. It goes through the same destination check as
  the worker's sends (API.md §19): the API process must not be a way around it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.domain.webhooks import PREVIOUS_SECRET_TTL, TEST_EVENT, derive
from paygate.errors import InvalidRequest, InvalidState, NotFound
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import events
from paygate.store import webhooks as store
from paygate.store.db import Conn, Row, transaction
from paygate.webhooks import signing
from paygate.webhooks.destinations import Resolver, check_url, system_resolver
from paygate.webhooks.sender import Sender
from paygate.worker.attempts import LEASE, attempt, record_in, release, sender_for

# A manual retry waits at most this long for an attempt in flight; a lease still held after that
# belongs to a worker that died (a live attempt ends within the 15 s timeout), so it is taken over.
MANUAL_WAIT_S = 16.0


def endpoint_view(gw: Gateway, row: Row, *, secret: bool = False) -> dict[str, Any]:
    return views.webhook_endpoint(row, secret=derive(row["secret"], gw.settings.secret_key) if secret else None)


async def validate_url(gw: Gateway, url: str, *, resolver: Resolver = system_resolver) -> str:
    """`url` if webhooks may be sent there (API.md §19), else 400 `parameter_invalid` on `url`."""
    problem = await check_url(url, allow_private=gw.settings.webhook_private_allowed, resolver=resolver)
    if problem is not None:
        raise InvalidRequest("parameter_invalid", problem, param="url")
    return url


def _sealed(gw: Gateway, outcome: Outcome, row: Row) -> Outcome:
    """The response as stored for idempotent replay: the secret replaced by its seed, so the database
    holds no usable secret; `signing.unseal` restores the exact bytes on replay."""
    secret = derive(row["secret"], gw.settings.secret_key)
    return Outcome(outcome.status, outcome.body.replace(secret.encode(), signing.sealed(row["secret"]).encode()))


async def create_endpoint(
    gw: Gateway, who: Principal, *, url: str, enabled_events: list[str], description: str | None, key: KeyHandle,
    legacy_signature: bool = False,
) -> Outcome:
    now = utcnow()
    async with transaction(gw.pool) as conn:
        row = await store.insert_endpoint(conn, {
            "id": new_id("we"), "merchant_id": who.merchant_id, "url": url, "enabled_events": enabled_events,
            "description": description, "secret": signing.new_seed(), "legacy_signature": legacy_signature,
            "created_at": now, "updated_at": now,
        })
        outcome = Outcome.of(201, endpoint_view(gw, row, secret=True))
        await key.finish(conn, _sealed(gw, outcome, row))
    return outcome


async def retrieve_endpoint(gw: Gateway, who: Principal, endpoint_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        row = await store.get_endpoint(conn, who.merchant_id, endpoint_id)
    if row is None:
        raise NotFound("webhook_endpoint", endpoint_id)
    return endpoint_view(gw, row)


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
        outcome = Outcome.of(200, endpoint_view(gw, row))
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
        outcome = Outcome.of(200, endpoint_view(gw, row, secret=True))
        await key.finish(conn, _sealed(gw, outcome, row))
    return outcome


async def send_test(gw: Gateway, who: Principal, endpoint_id: str, key: KeyHandle) -> Outcome:
    """A `webhook.test` event for this endpoint alone (API.md §11 v2) → 202 with its delivery.

    Through the normal machinery: one transaction writes the event and its single delivery (never a fan-out
    to the merchant's other endpoints), and the worker sends, signs, retries and logs it like any other. The
    event's `data.object` is the endpoint without its secret. A disabled endpoint is 409 `endpoint_disabled`
    (it receives nothing until re-enabled, §8; queuing a test that waits would only confuse)."""
    async with transaction(gw.pool) as conn:
        row = await _locked(conn, who, endpoint_id)
        if row["disabled"]:
            raise InvalidState("endpoint_disabled",
                               f"The endpoint {endpoint_id} is disabled; enable it to send a test webhook.")
        event_id = new_id("evt")
        delivery = await events.emit_to_endpoint(
            conn, event_id=event_id, merchant_id=who.merchant_id, type=TEST_EVENT, endpoint_id=endpoint_id,
            data=views.webhook_endpoint(row), now=utcnow())
        outcome = Outcome.of(202, views.webhook_delivery(delivery))
        await key.finish(conn, outcome)
    return outcome


async def retrieve_delivery(gw: Gateway, who: Principal, delivery_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        row = await store.get_delivery(conn, who.merchant_id, delivery_id)
    if row is None:
        raise NotFound("webhook_delivery", delivery_id)
    return views.webhook_delivery(row)


async def retry_delivery(
    gw: Gateway, who: Principal, delivery_id: str, key: KeyHandle, sender: Sender | None = None, *,
    wait_s: float = MANUAL_WAIT_S,
) -> Outcome:
    """Manual retry: one extra attempt now, in this request; its outcome is the delivery's status.
    `wait_s` bounds the wait for an attempt in flight before its lease is taken over."""
    leased = await _lease_for_manual(gw, who, delivery_id, wait_s)
    try:
        async with transaction(gw.pool) as conn:  # the key is taken before anything is sent
            await key.checkpoint(conn, "retry_started", delivery_id)
        if leased["endpoint_deleted"]:
            raise InvalidState("endpoint_deleted", f"The delivery's endpoint {leased['endpoint_id']} was deleted.")
        if leased["endpoint_disabled"]:
            raise InvalidState("endpoint_disabled",
                               f"The delivery's endpoint {leased['endpoint_id']} is disabled; enable it first.")
        if sender is None:
            async with sender_for(gw) as own:
                result = await attempt(own, leased, gw.settings.secret_key)
        else:
            result = await attempt(sender, leased, gw.settings.secret_key)
    except BaseException:
        await release(gw, [(leased["id"], leased["locked_until"])])
        raise
    async with transaction(gw.pool) as conn:
        row = await record_in(conn, leased, result, [], manual=True)
        outcome = Outcome.of(200, views.webhook_delivery(row))
        await key.finish(conn, outcome)
    return outcome


async def _lease_for_manual(gw: Gateway, who: Principal, delivery_id: str, wait_s: float) -> Row:
    deadline = time.monotonic() + wait_s
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
