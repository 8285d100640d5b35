"""Saved payment methods (API.md §16): retrieve, list a customer's, detach; and `attach_card`, the one way a
card becomes a saved method (the payment path's save and POST /v1/payment_methods build on it).

The card number goes into the vault (paygate.vault) in the transaction that inserts the row, sealed for
that row; detaching erases it in the transaction that detaches. Events `payment_method.attached` and
`.detached` are emitted in the same transactions (the outbox: once, or not at all).
"""

from __future__ import annotations

from typing import Any

from paygate.config import Settings
from paygate.domain import cards, customer_views
from paygate.domain.ids import new_id
from paygate.errors import NotFound
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import customers, events
from paygate.store import payment_methods as store
from paygate.store.db import Conn, Row, transaction
from paygate.vault import CardNumber, keyring, seal


async def attach_card(
    conn: Conn, settings: Settings, *, merchant_id: str, customer_id: str, number: CardNumber, exp_month: int,
    exp_year: int,
) -> Row:
    """Insert a saved card for the customer (in the caller's transaction) and emit `payment_method.attached`.
    Takes the settings, not the gateway: the keys are all it needs (and tests and the CLI have no gateway)."""
    if await customers.lock_shared(conn, merchant_id, customer_id) is None:  # not being deleted under us
        raise NotFound("customer", customer_id, param="customer")
    pm_id, now = new_id("pm"), utcnow()
    public = cards.public_view(number.digits, exp_month, exp_year, settings.fingerprint_key)
    sealed = seal(keyring(settings.vault_key), number, merchant_id=merchant_id, record_id=pm_id)
    row = await store.insert(conn, {
        "id": pm_id, "merchant_id": merchant_id, "customer_id": customer_id, "brand": public["brand"],
        "last4": public["last4"], "exp_month": public["exp_month"], "exp_year": public["exp_year"],
        "fingerprint": public["fingerprint"], "created_at": now,
    }, sealed)
    await events.emit(conn, event_id=new_id("evt"), merchant_id=merchant_id, type="payment_method.attached",
                      object_id=pm_id, data=customer_views.payment_method(row), now=now)
    return row


async def detach_in(conn: Conn, row: Row) -> Row:
    """Detach a locked, attached method in the caller's transaction: customer gone, number erased, event."""
    now = utcnow()
    row = await store.detach(conn, row["id"], now)
    await events.emit(conn, event_id=new_id("evt"), merchant_id=row["merchant_id"], type="payment_method.detached",
                      object_id=row["id"], data=customer_views.payment_method(row), now=now)
    return row


async def retrieve(gw: Gateway, who: Principal, pm_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        row = await store.get(conn, who.merchant_id, pm_id)
    if row is None:
        raise NotFound("payment_method", pm_id)
    return customer_views.payment_method(row)


async def detach(gw: Gateway, who: Principal, pm_id: str, key: KeyHandle) -> Outcome:
    """POST /v1/payment_methods/{id}/detach: 200 with customer null. Detaching a detached method changes
    nothing and answers the same object (no second event)."""
    async with transaction(gw.pool) as conn:
        row = await store.lock(conn, who.merchant_id, pm_id)
        if row is None:
            raise NotFound("payment_method", pm_id)
        if row["customer_id"] is not None:
            row = await detach_in(conn, row)
        outcome = Outcome.of(200, customer_views.payment_method(row))
        await key.finish(conn, outcome)
    return outcome
