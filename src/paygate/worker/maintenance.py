"""Idempotency-key completer and reaper, and the retention of old events."""

from __future__ import annotations

from datetime import timedelta

from paygate.domain import views
from paygate.services.gateway import Gateway, Outcome, utcnow
from paygate.services.payments import render
from paygate.store import bank_ops, events, idempotency, payments, refunds
from paygate.store.db import Conn, Row, transaction

EVENT_RETENTION = timedelta(days=30)


async def _final_response(conn: Conn, key: Row) -> Outcome | None:
    """The response the abandoned request would have given, once its operation is final; else None."""
    point, resource = key["recovery_point"], key["resource_id"]
    merchant = key["merchant_id"]
    if point == "payment_created":
        p = await payments.get(conn, merchant, resource)
        op = await bank_ops.pending_for_payment(conn, resource, "authorization")
        if p is None or (op is not None and op["status"] == "pending"):
            return None
        return render(p)
    if point == "authentication_started":  # §15: final for its retries once the bank's answer is recorded
        p = await payments.get(conn, merchant, resource)
        if p is None or (p["status"] == "requires_action" and p.get("challenge_url") is None):
            return None
        if p["status"] == "pending":  # passed: its authorization in flight is awaited, as for payment_created
            op = await bank_ops.pending_for_payment(conn, resource, "authorization")
            if op is not None and op["status"] == "pending":
                return None
        return render(p)
    if point in ("capture_started", "void_started"):
        op = await bank_ops.get(conn, resource)
        if op is None or op["status"] == "pending":
            return None
        p = await payments.get(conn, merchant, op["payment_id"])
        return Outcome.of(200, views.payment(p)) if p else None
    if point == "refund_created":
        op = await bank_ops.for_refund(conn, resource)
        r = await refunds.get(conn, merchant, resource)
        if r is None or (op is not None and op["status"] == "pending"):
            return None
        return Outcome.of(201, views.refund(r))
    return None


async def complete_abandoned_keys(gw: Gateway, limit: int = 100) -> int:
    """Brandur's completer: a request that died mid-way gets its final response stored for its retries."""
    done = 0
    async with transaction(gw.pool) as conn:
        for key in await idempotency.abandoned(conn, limit):
            outcome = await _final_response(conn, key)
            if outcome is not None:
                await idempotency.store_response(conn, key["merchant_id"], key["key"], outcome.status, outcome.body)
                done += 1
    return done


async def reap(gw: Gateway) -> tuple[int, int]:
    now = utcnow()
    async with transaction(gw.pool) as conn:
        keys = await idempotency.purge(conn, now - timedelta(hours=gw.settings.idempotency_retention_h))
        old_events = await events.purge(conn, now - EVENT_RETENTION)
    return keys, old_events
