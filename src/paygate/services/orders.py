"""Orders (API.md §7): what a customer is asked to pay. Payments attach to an order; `settle` marks it paid.

Creating an order is one transaction — the row and the idempotency key's stored response commit together —
so a retry with the same key either replays the order or creates it, never two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.errors import NotFound
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import customers, orders, payments
from paygate.store.db import transaction


@dataclass
class NewOrder:
    amount: int
    currency: str
    receipt: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    customer: str | None = None  # a cus_ id (§16)
    return_url: str | None = None  # §15: where the hosted checkout's return-link goes


async def create(gw: Gateway, who: Principal, req: NewOrder, key: KeyHandle) -> Outcome:
    now = utcnow()
    async with transaction(gw.pool) as conn:
        if req.customer is not None and await customers.lock_shared(conn, who.merchant_id, req.customer) is None:
            raise NotFound("customer", req.customer, param="customer")
        row = await orders.insert(conn, {
            "id": new_id("ord"), "merchant_id": who.merchant_id, "amount": req.amount, "currency": req.currency,
            "receipt": req.receipt, "notes": req.notes, "created_at": now, "updated_at": now,
            "customer": req.customer, "return_url": req.return_url,
        })
        outcome = Outcome.of(201, views.order(row, gw.settings.public_url))
        await key.finish(conn, outcome)
    return outcome


async def retrieve(gw: Gateway, who: Principal, order_id: str) -> dict[str, Any]:
    """The full order for a secret key; only its public view for a publishable key (the checkout's)."""
    async with gw.pool.connection() as conn:
        row = await orders.get(conn, who.merchant_id, order_id)
    if row is None:
        raise NotFound("order", order_id)
    if who.kind != "secret":
        return views.order_public(row)
    return views.order(row, gw.settings.public_url)


async def list_orders(
    gw: Gateway, who: Principal, *, limit: int, starting_after: str | None, created_gte: datetime | None,
    created_lt: datetime | None,
) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        rows = await orders.page(conn, who.merchant_id, created_gte=created_gte, created_lt=created_lt,
                                 starting_after=starting_after, limit=limit)
    return views.listing([views.order(r, gw.settings.public_url) for r in rows[:limit]], len(rows) > limit)


async def list_payments(
    gw: Gateway, who: Principal, order_id: str, *, limit: int, starting_after: str | None,
    created_gte: datetime | None, created_lt: datetime | None,
) -> dict[str, Any]:
    """The order's payments, newest first; 404 for an order that is unknown or another merchant's."""
    async with gw.pool.connection() as conn:
        if await orders.get(conn, who.merchant_id, order_id) is None:
            raise NotFound("order", order_id)
        rows = await payments.page(conn, who.merchant_id, order_id=order_id, created_gte=created_gte,
                                   created_lt=created_lt, starting_after=starting_after, limit=limit)
    return views.listing([views.payment(r) for r in rows[:limit]], len(rows) > limit)
