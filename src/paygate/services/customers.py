"""Customers (API.md §16): create, retrieve, update, list, delete.

Deleting a customer detaches every method still attached to it (each one's card number erased, each
with its `payment_method.detached` event) in the transaction that deletes it; the customer's row stays,
emptied of its personal data, and its id is then as unknown as a foreign one (docs/customers-and-vault.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygate.domain import customer_views
from paygate.domain.ids import new_id
from paygate.errors import NotFound
from paygate.services import payment_methods
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import customers as store
from paygate.store import payment_methods as pm_store
from paygate.store.db import Conn, Row, transaction


async def create(gw: Gateway, who: Principal, fields: dict[str, Any], key: KeyHandle) -> Outcome:
    now = utcnow()
    async with transaction(gw.pool) as conn:
        row = await store.insert(conn, {**fields, "id": new_id("cus"), "merchant_id": who.merchant_id,
                                        "created_at": now, "updated_at": now})
        outcome = Outcome.of(201, customer_views.customer(row))
        await key.finish(conn, outcome)
    return outcome


async def retrieve(gw: Gateway, who: Principal, customer_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        row = await store.get(conn, who.merchant_id, customer_id)
    if row is None:
        raise NotFound("customer", customer_id)
    return customer_views.customer(row)


async def update(gw: Gateway, who: Principal, customer_id: str, changes: dict[str, Any], key: KeyHandle) -> Outcome:
    async with transaction(gw.pool) as conn:
        row = await _locked(conn, who, customer_id)
        fields = {k: v for k, v in changes.items() if row[k] != v}
        if fields:
            row = await store.update(conn, customer_id, {**fields, "updated_at": utcnow()})
        outcome = Outcome.of(200, customer_views.customer(row))
        await key.finish(conn, outcome)
    return outcome


async def delete(gw: Gateway, who: Principal, customer_id: str, key: KeyHandle) -> Outcome:
    async with transaction(gw.pool) as conn:
        await _locked(conn, who, customer_id)
        for pm in await pm_store.lock_attached_of_customer(conn, customer_id):
            await payment_methods.detach_in(conn, pm)
        await store.erase(conn, customer_id, utcnow())
        outcome = Outcome.of(200, customer_views.deleted_customer(customer_id))
        await key.finish(conn, outcome)
    return outcome


async def page(
    gw: Gateway, who: Principal, *, email: str | None = None, search: str | None = None,
    created_gte: datetime | None = None, created_lt: datetime | None = None, starting_after: str | None = None,
    limit: int = 10,
) -> list[Row]:
    async with gw.pool.connection() as conn:
        return await store.page(conn, who.merchant_id, email=email, search=search, created_gte=created_gte,
                                created_lt=created_lt, starting_after=starting_after, limit=limit)


async def payment_methods_of(
    gw: Gateway, who: Principal, customer_id: str, *, starting_after: str | None = None, limit: int = 10,
) -> list[Row]:
    """The customer's attached methods (404 for an unknown, deleted or foreign customer)."""
    async with gw.pool.connection() as conn:
        if await store.get(conn, who.merchant_id, customer_id) is None:
            raise NotFound("customer", customer_id)
        return await pm_store.page_of_customer(conn, who.merchant_id, customer_id, starting_after=starting_after,
                                               limit=limit)


async def _locked(conn: Conn, who: Principal, customer_id: str) -> Row:
    row = await store.lock(conn, who.merchant_id, customer_id)
    if row is None:
        raise NotFound("customer", customer_id)
    return row
