"""Receipts and checkout links by email (API.md §16, docs/emails.md): the outbox and its worker side.

Queueing happens inside the transaction of the change an email reports (`settle` calls
`queue_payment_receipt` where `payment.captured` is emitted and `queue_refund_receipt` where
`refund.succeeded` is), so a receipt is owed exactly when the capture or refund commits, once per
(object, kind) however many paths settle it. Sending is the webhook pattern: lease the row (one
statement), talk SMTP (no transaction open), record the attempt (one conditional statement). A worker
that dies mid-way leaves a lease that expires: at least once, each attempt with the same Message-ID.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import structlog

from paygate.domain import emails as rules
from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.domain.retry import next_delay
from paygate.errors import InvalidState, NotFound
from paygate.mail import compose
from paygate.mail.transport import SendFailed, Transport
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import customers, orders
from paygate.store import emails as store
from paygate.store.db import Conn, Row, transaction

log = structlog.get_logger("paygate.emails")

# Finished emails are kept as long as events (API.md §8: 30 days), then purged: they hold addresses.
RETENTION = timedelta(days=30)
# Outlives the longest attempt (the 15 s SMTP timeout, connecting and sending) with room to record it.
LEASE = timedelta(seconds=60)


# --- queueing, in the caller's transaction -------------------------------------------------------------

async def receipt_recipient(conn: Conn, payment: Row) -> str | None:
    """Who a payment's receipts go to, or None for no receipt. §16: `receipt_email`, else the email of the
    payment's customer (`customer`, the cus_ id; a deleted customer has none)."""
    email = payment.get("receipt_email")
    if not email and payment.get("customer"):
        customer = await customers.get(conn, payment["merchant_id"], payment["customer"])
        email = customer["email"] if customer is not None else None
    return str(email) if email else None


async def queue_payment_receipt(conn: Conn, payment: Row, now: datetime) -> None:
    """The receipt of a payment that has just been captured (no round trip of its own in a pipeline)."""
    to = await receipt_recipient(conn, payment)
    if to is None:
        return
    view = views.payment(payment)
    await store.enqueue(conn, email_id=new_id("em"), merchant_id=payment["merchant_id"], kind="payment_receipt",
                        object_id=payment["id"], recipient=to, data=rules.payment_receipt(view, views.ts(now) or ""),
                        now=now)


async def queue_refund_receipt(conn: Conn, payment: Row, refund: Row, now: datetime) -> None:
    """The receipt of a refund that has just succeeded."""
    to = await receipt_recipient(conn, payment)
    if to is None:
        return
    data = rules.refund_receipt(views.payment(payment), views.refund(refund), views.ts(now) or "")
    await store.enqueue(conn, email_id=new_id("em"), merchant_id=payment["merchant_id"], kind="refund_receipt",
                        object_id=refund["id"], recipient=to, data=data, now=now)


def email_view(*, email_id: str, kind: str, recipient: str, object_id: str, status: str, created_at: datetime,
               ) -> dict[str, Any]:
    return {"id": email_id, "object": "email", "type": kind, "to": recipient, "object_id": object_id,
            "status": status, "created_at": views.ts(created_at)}


async def send_link(gw: Gateway, who: Principal, order_id: str, email: str, key: KeyHandle) -> Outcome:
    """POST /v1/orders/{id}/send_link: queue the order's checkout link for `email` → 202 with the email.

    A paid order is 409 `order_already_paid` (stored and replayed like every invalid-state answer): a
    link to a page that can only say "already paid" would confuse the customer.
    """
    async with transaction(gw.pool) as conn:
        order = await orders.lock(conn, who.merchant_id, order_id)  # serialises with its payments' settle
        if order is None:
            raise NotFound("order", order_id)
        if order["status"] == "paid":
            raise InvalidState("order_already_paid", f"Order {order_id} is already paid.")
        now = utcnow()
        email_id = new_id("em")
        data = rules.checkout_link(views.order(order, gw.settings.public_url), views.ts(now) or "")
        await store.enqueue(conn, email_id=email_id, merchant_id=who.merchant_id, kind="checkout_link",
                            object_id=order_id, recipient=email, data=data, now=now)
        outcome = Outcome.of(202, email_view(email_id=email_id, kind="checkout_link", recipient=email,
                                             object_id=order_id, status="pending", created_at=now))
        await key.finish(conn, outcome)
    return outcome


# --- the worker's side ---------------------------------------------------------------------------------

async def claim(gw: Gateway, *, limit: int, schedule: list[float]) -> list[Row]:
    async with gw.pool.connection() as conn:  # autocommit: the claim is one atomic statement
        now = utcnow()
        return await store.claim(conn, now=now, lease_until=now + LEASE,
                                 first_due=now - timedelta(seconds=schedule[0]), limit=limit)


async def skip_due(gw: Gateway, limit: int = 500) -> int:
    """No SMTP server configured: due emails are recorded `skipped` (and never sent later)."""
    async with gw.pool.connection() as conn:
        return await store.skip_due(conn, now=utcnow(), limit=limit)


def decide(ok: bool, permanent: bool, attempts_before: int, schedule: list[float], now: datetime,
           ) -> tuple[str, datetime | None]:
    """(status, next attempt) after an attempt: the webhook schedule's rules (domain.retry)."""
    if ok:
        return "sent", None
    delay = None if permanent else next_delay(attempts_before + 1, schedule)
    if delay is None:
        return "failed", None
    return "pending", now + timedelta(seconds=delay)


async def deliver(gw: Gateway, transport: Transport, leased: Row, schedule: list[float]) -> Row | None:
    """Send a leased email and record the attempt; None if the lease was lost meanwhile."""
    started = time.monotonic()
    at = utcnow()
    error: str | None = None
    code: int | None = None
    permanent = False
    try:
        message = compose.build(leased, gw.settings.smtp_from)
    except Exception as exc:  # a row we cannot render will not render next time either
        error, permanent = f"unrenderable: {type(exc).__name__}", True
    else:
        try:
            await transport.send(message)
        except SendFailed as exc:
            error, code, permanent = exc.error, exc.code, exc.permanent
    now = utcnow()
    attempt = {"at": views.ts(at), "error": error, "smtp_code": code,
               "duration_ms": round((time.monotonic() - started) * 1000)}
    status, next_at = decide(error is None, permanent, leased["attempt_count"], schedule, now)
    async with gw.pool.connection() as conn:
        row = await store.record_if_leased(conn, leased["id"], lease=leased["locked_until"], attempt=attempt,
                                           status=status, next_attempt_at=next_at, now=now)
    if error is not None:
        log.info("email_attempt_failed", email=leased["id"], kind=leased["kind"], status=status, error=error,
                 smtp_code=code)
    return row


async def release(gw: Gateway, leases: list[tuple[str, datetime]]) -> int:
    async with transaction(gw.pool) as conn:
        return await store.release(conn, leases)


async def purge(gw: Gateway) -> int:
    async with gw.pool.connection() as conn:
        return await store.purge(conn, utcnow() - RETENTION)
