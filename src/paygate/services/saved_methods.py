"""Saved cards on the payment path (API.md §16): which card and customer a payment uses, and the card it saves.

`payments.create` calls this module at two points, so the acquirer call in between stays as it is (routing
and failover apply to a saved card exactly as to a new one):

    resolve(...)        before the intent: check `customer`, `save_payment_method`, `off_session`; for
                        `"payment_method": "pm_…"`, reveal the saved number (the payment path is the one
                        caller of `vault.reveal`) into the request's card, in memory only
    save_on_success(..) in the transaction that records a successful authorization: attach the card to
                        the customer (`payment_method.attached`) and put its id on the payment

Where the number of a card saved while paying lives between the intent and the outcome: in memory, in
this request, and nowhere else (the payment row and the bank operation never hold it). A crash between
the bank's yes and the outcome's commit, or an outcome settled by the recovery worker or a bank callback
instead of this request, therefore pays without saving: the payment is right, only the convenience is
lost, and the customer saves the card next time. Sealing it into a "pending save" vault row at the intent
would survive that crash, at the price of a row state every read of payment_methods must exclude and an
erasure on every failure path (docs/customers-and-vault.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paygate.domain import cards, customer_views
from paygate.domain.ids import new_id
from paygate.domain.payments import Status
from paygate.errors import CardError, InvalidRequest, NotFound
from paygate.services import payment_methods
from paygate.services.gateway import Gateway, Principal, utcnow
from paygate.store import bank_ops, customers, events, orders, payments, pending_saves
from paygate.store import payment_methods as pm_store
from paygate.store.db import Conn, Row
from paygate.vault import CardNumber, VaultError, keyring, reveal, seal


@dataclass
class Resolved:
    """The payment method and customer a payment uses. `method` is what the bank is sent (for a saved
    card, its revealed number, expiry and no CVC); `saved_id` names the saved method being charged."""

    method: dict[str, Any]
    customer: str | None = None
    saved_id: str | None = None
    save: bool = False
    off_session: bool = False


async def resolve(gw: Gateway, who: Principal, *, payment_method: dict[str, Any] | str, customer: str | None,
                  save: bool, off_session: bool, order_id: str | None) -> Resolved:
    """Every check of §16 on a new payment, before anything is written. Raises 400/404 (nothing changed)."""
    async with gw.pool.connection() as conn:
        if order_id is not None:
            order = await orders.get(conn, who.merchant_id, order_id)
            if order is not None and order.get("customer") is not None:
                if customer is not None and customer != order["customer"]:
                    raise InvalidRequest("parameter_invalid", "customer must be the order's customer.",
                                         param="customer")
                customer = order["customer"]
        if customer is not None and await customers.get(conn, who.merchant_id, customer) is None:
            raise NotFound("customer", customer, param="customer")
        if isinstance(payment_method, str):
            return await _saved(conn, gw, who, payment_method, customer, save, off_session)
    if off_session:
        raise InvalidRequest("parameter_invalid", "off_session applies to a saved payment method (\"pm_…\") only.",
                             param="off_session")
    if save:
        if customer is None:
            raise InvalidRequest("parameter_missing", "save_payment_method needs a customer (cus_…).",
                                 param="customer")
        if payment_method["type"] != "card":
            raise InvalidRequest("parameter_invalid", "Only a card can be saved.", param="save_payment_method")
    return Resolved(method=payment_method, customer=customer, save=save)


async def _saved(conn: Conn, gw: Gateway, who: Principal, pm_id: str, customer: str | None, save: bool,
                 off_session: bool) -> Resolved:
    if save:
        raise InvalidRequest("parameter_invalid", "This payment method is saved already.", param="save_payment_method")
    if customer is None:
        raise InvalidRequest("parameter_missing", "customer is required to pay with a saved payment method.",
                             param="customer")
    row = await pm_store.get(conn, who.merchant_id, pm_id)
    if row is None:
        raise NotFound("payment_method", pm_id, param="payment_method")
    if row["customer_id"] is None:
        # 400, not 404: the method exists (GET answers it, customer null), it just cannot be charged
        raise InvalidRequest("parameter_invalid", f"Payment method {pm_id} is detached and can no longer be charged.",
                             param="payment_method")
    if row["customer_id"] != customer:
        raise InvalidRequest("parameter_invalid", f"Payment method {pm_id} does not belong to customer {customer}.",
                             param="customer")
    sealed = await pm_store.sealed_of(conn, who.merchant_id, pm_id)
    if sealed is None:  # detached since the read above
        raise InvalidRequest("parameter_invalid", f"Payment method {pm_id} is detached and can no longer be charged.",
                             param="payment_method")
    try:
        number = reveal(keyring(gw.settings.vault_key), sealed, merchant_id=who.merchant_id, record_id=pm_id)
    except VaultError:  # names the record and key id only; the card cannot be charged with the keys we have
        raise CardError("processing_error", f"Payment method {pm_id} cannot be read with the configured vault "
                        "keys (PAYGATE_VAULT_KEY).") from None
    card = {"number": number.digits, "exp_month": row["exp_month"], "exp_year": row["exp_year"]}
    return Resolved(method={"type": "card", "card": card}, customer=customer, saved_id=pm_id,
                    off_session=off_session)


def public_method(resolved: Resolved, fingerprint_key: str) -> dict[str, Any]:
    """The payment's `payment_method` as stored and shown: brand, last4, expiry, fingerprint; and the id of
    the saved method it charged."""
    pm = resolved.method
    if pm["type"] != "card":
        return {"type": "upi", "upi": {"vpa": pm["upi"]["vpa"]}}
    c = pm["card"]
    card = cards.public_view(c["number"], c["exp_month"], c["exp_year"], fingerprint_key)
    if resolved.saved_id is not None:
        return {"id": resolved.saved_id, "type": "card", "card": card}
    return {"type": "card", "card": card}


async def save_on_success(conn: Conn, gw: Gateway, resolved: Resolved | None, op_id: str,
                          outcome: str) -> Row | None:
    """Before `settle` records a successful authorization, in its transaction: save the card and name it on
    the payment, so the payment's events already carry the id. Only when this answer is the one that
    settles it (the operation still pending, the payment still pending): settle then certainly moves it
    to authorized or captured. A customer deleted meanwhile gets nothing saved; the payment stands. Returns
    the payment when it named the card on it (`authorize.BeforeSettle`), else None."""
    if resolved is None or not resolved.save or outcome != "succeeded":
        return None
    p, op = await bank_ops.lock_with_payment(conn, op_id)
    if op["status"] != "pending" or p["status"] != Status.PENDING or p["method_type"] != "card":
        return None
    c = resolved.method["card"]
    assert resolved.customer is not None
    try:
        row = await payment_methods.attach_card(
            conn, gw.settings, merchant_id=p["merchant_id"],
            customer_id=resolved.customer, number=CardNumber(c["number"]), exp_month=c["exp_month"],
            exp_year=c["exp_year"])
    except NotFound:
        return None
    return await payments.update(conn, p, {"payment_method": {"id": row["id"], **p["payment_method"]}})


# --- a card saved through a challenge (§16 with §15) -------------------------------------------------------
#
# The authorization of a challenged payment happens after the create request, which alone saw the number: so
# that request seals it for the saved method's id-to-be into pending_card_saves (`hold_for_challenge`), and the
# transaction that records the authorization's success attaches it (`save_held`); every other end erases it.


async def hold_for_challenge(conn: Conn, gw: Gateway, resolved: Resolved, payment_id: str, merchant_id: str,
                             now: Any) -> None:
    """In the create's intent transaction: keep the card to save, sealed, until the challenge is over."""
    if not resolved.save or resolved.customer is None or resolved.method["type"] != "card":
        return
    c = resolved.method["card"]
    pm_id = new_id("pm")
    number = CardNumber(c["number"])
    public = cards.public_view(number.digits, c["exp_month"], c["exp_year"], gw.settings.fingerprint_key)
    sealed = seal(keyring(gw.settings.vault_key), number, merchant_id=merchant_id, record_id=pm_id)
    await pending_saves.insert(conn, {
        "payment_id": payment_id, "merchant_id": merchant_id, "customer_id": resolved.customer, "pm_id": pm_id,
        "brand": public["brand"], "last4": public["last4"], "exp_month": public["exp_month"],
        "exp_year": public["exp_year"], "fingerprint": public["fingerprint"], "created_at": now}, sealed)


async def save_held(conn: Conn, gw: Gateway, op_id: str, outcome: str) -> Row | None:
    """`authorize.BeforeSettle` of a challenged payment's authorization: on the success that settles it, the held
    card becomes the customer's saved method (named on the payment, which is returned); on any final answer the
    hold is gone."""
    p, op = await bank_ops.lock_with_payment(conn, op_id)
    if op["status"] != "pending" or p["status"] != Status.PENDING:
        return None
    held = await pending_saves.take(conn, p["id"])
    if held is None or outcome != "succeeded":
        return None
    row, sealed = held
    if await customers.lock_shared(conn, p["merchant_id"], row["customer_id"]) is None:
        return None  # deleted meanwhile: the payment stands, nothing is saved
    saved = await pm_store.insert(conn, {
        "id": row["pm_id"], "merchant_id": p["merchant_id"], "customer_id": row["customer_id"], "brand": row["brand"],
        "last4": row["last4"], "exp_month": row["exp_month"], "exp_year": row["exp_year"],
        "fingerprint": row["fingerprint"], "created_at": utcnow()}, sealed)
    await events.emit(conn, event_id=new_id("evt"), merchant_id=p["merchant_id"], type="payment_method.attached",
                      object_id=saved["id"], data=customer_views.payment_method(saved), now=utcnow())
    return await payments.update(conn, p, {"payment_method": {"id": saved["id"], **p["payment_method"]}})


async def discard_held(conn: Conn, payment_id: str) -> None:
    """The challenged payment ended without an authorization: the held card is erased."""
    await pending_saves.take(conn, payment_id)
