"""Saved payment methods (API.md §16): retrieve, list a customer's, detach; and `attach_card`, the one way a
card becomes a saved method (the payment path's save and POST /v1/payment_methods build on it).

The card number goes into the vault (paygate.vault) in the transaction that inserts the row, sealed for
that row; detaching erases it in the transaction that detaches. Events `payment_method.attached` and
`.detached` are emitted in the same transactions (the outbox: once, or not at all).
"""

from __future__ import annotations

from typing import Any

import structlog

from paygate.acquirers.base import AcquirerResult, NotSent, Unavailable
from paygate.config import Settings
from paygate.domain import cards, customer_views
from paygate.domain.authentication import requires_authentication
from paygate.domain.ids import new_id
from paygate.errors import ApiError, CardError, NotFound
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.services.settle import FAILURE_MESSAGES
from paygate.store import customers, events
from paygate.store import payment_methods as store
from paygate.store.db import Conn, Row, transaction
from paygate.vault import CardNumber, keyring, seal

log = structlog.get_logger("paygate.payment_methods")


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


async def create(gw: Gateway, who: Principal, customer_id: str, card: dict[str, Any], key: KeyHandle) -> Outcome:
    """POST /v1/payment_methods: verify the card at an acquirer (no money held), then save it → 201.

    A declined verification is 402 with the decline code (card_error, stored under the key like a failed
    payment) and saves nothing. The challenge card (§15) cannot be verified without its customer: 402
    `authentication_required`, nothing asked, nothing saved. The acquirers are tried in their configured
    order, the next only when the previous certainly never received the request (NotSent): a verification
    holds no money, so the merchant's routing rules (amount, currency) have nothing to decide; a saved card
    is not tied to the acquirer that verified it. No answer at all: 503, nothing saved, the key released
    (a retry with it verifies again, which is harmless)."""
    async with gw.pool.connection() as conn:
        if await customers.get(conn, who.merchant_id, customer_id) is None:
            raise NotFound("customer", customer_id, param="customer")
    if requires_authentication(card["number"]):  # asks for it on every on-session use: no verification alone
        outcome = _declined("authentication_required", "This card asks its customer for authentication; save it "
                            "while paying instead (POST /v1/payments with save_payment_method).")
        async with transaction(gw.pool) as conn:
            await key.finish(conn, outcome)
        return outcome
    result = await _verify(gw, new_id("ver"), card)
    if result is None:
        raise ApiError("acquirer_unavailable", "No acquirer could verify the card; nothing was saved. Retry shortly.",
                       status=503, retry_after=1)
    async with transaction(gw.pool) as conn:
        if result.outcome != "succeeded":
            code = result.failure_code or "processing_error"
            outcome = _declined(code, FAILURE_MESSAGES.get(code, "The card was declined."))
        else:
            row = await attach_card(conn, gw.settings, merchant_id=who.merchant_id, customer_id=customer_id,
                                    number=CardNumber(card["number"]), exp_month=card["exp_month"],
                                    exp_year=card["exp_year"])
            outcome = Outcome.of(201, customer_views.payment_method(row))
        await key.finish(conn, outcome)
    return outcome


def _declined(code: str, message: str) -> Outcome:
    return Outcome.of(402, CardError(code, message).body())


async def _verify(gw: Gateway, ref: str, card: dict[str, Any]) -> AcquirerResult | None:
    method = {"type": "card", "card": {k: card[k] for k in ("number", "exp_month", "exp_year", "cvc")}}
    for name, bank in gw.acquirers.items():
        try:
            return await bank.verify(key=f"{ref}_{name}", reference=ref, payment_method=method)
        except NotSent as exc:
            log.warning("verification_not_sent", acquirer=name, error=type(exc).__name__)
        except Unavailable as exc:  # it may have been received: a verification holds nothing, but stop here
            log.warning("verification_no_answer", acquirer=name, error=type(exc).__name__)
            return None
    return None
