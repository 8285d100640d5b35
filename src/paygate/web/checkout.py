"""The hosted checkout (API.md §7, §11): a public page per order, the two JSON calls its script makes, and
the success page.

The page needs no API key: merchants made before migration 0006 have only hashes of theirs stored, and a
checkout link must not depend on which keys are live. The page therefore talks to routes of its own, which
act for the order's merchant with the rights of a publishable key — exactly what a pk_test_ key could do
through /v1 (read the order, pay it):

    POST /checkout/{order_id}/pay      {"payment_method": … | "pm_…", "save_payment_method"?, "embed_origin"?}
                                       + Idempotency-Key → the /v1/payments answer (saved cards: the order's
                                       customer's, §16; a card that needs authentication: 201 requires_action,
                                       whose return_url brings the customer back to this page, §15)
    GET  /checkout/{order_id}/status   the order's status, the checkout's payment (for UPI polling) and how
                                       many failed payments the order still accepts (API.md §19)
    GET  /checkout/{order_id}/success?payment_id=…   the standalone success page (API.md §11 v2)
    GET  /checkout/{order_id}?payment_id=…           the page again, showing that payment: where the bank's
                                                     challenge comes back to (§15, docs/authentication.md)

The order id is the capability, as with Stripe's checkout session URLs: whoever holds the link may pay
the order and see whether it is paid, nothing more. When the SDK opens the page it passes its key, and
the page refuses to open unless that key is a publishable key of the order's merchant.

Anyone may call these routes, so each counts against its client address's public rate limit (API.md
§19; the page answers 429 as a page, the JSON calls as the API would), and the checkout's Idempotency-Keys
live in their own namespace: holding a link never lets anyone claim or probe the merchant's own keys.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response

from paygate.domain import authentication
from paygate.domain.payments import Status
from paygate.errors import NotFound, RateLimited
from paygate.http.auth import lookup_key, public_surface
from paygate.http.context import gateway
from paygate.http.idempotency import idempotent
from paygate.http.responses import json
from paygate.http.schemas import MethodOrSaved
from paygate.services import payments as payment_service
from paygate.services.gateway import Principal
from paygate.store import merchants, orders, payment_methods, payments
from paygate.store.db import Conn, Row
from paygate.web.render import html, money

router = APIRouter(include_in_schema=False)

_PAID = frozenset({Status.CAPTURED, Status.PARTIALLY_REFUNDED, Status.REFUNDED})
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]{1,255}$")
_NO_STORE = {"Cache-Control": "no-store"}


class CheckoutPay(BaseModel):
    """What the page may send: a payment method. Amount and currency always come from the order."""

    model_config = ConfigDict(extra="forbid")
    payment_method: MethodOrSaved  # or a saved card of the order's customer ("pm_…", §16)
    save_payment_method: StrictBool = False  # the save-card checkbox: for the order's customer
    # The page is in the SDK's modal, framed by this origin: the bank's challenge must come back to a page
    # that origin may frame again (frame-ancestors) and that posts its messages to it (§15, the SDK).
    embed_origin: str | None = Field(default=None, max_length=300, pattern=_ORIGIN.pattern)


def _public(p: Row | None) -> dict[str, Any] | None:
    """What the page needs of a payment: never the customer's or the merchant's other data. A payment
    awaiting the customer's authentication carries the bank's challenge page, so that a page reloaded
    (or a second tab) can send the customer back there (§15)."""
    if p is None:
        return None
    return {"id": p["id"], "status": p["status"], "method": p["method_type"], "failure_code": p["failure_code"],
            "failure_message": _FOR_THE_CUSTOMER.get(p["failure_code"] or "", p["failure_message"]),
            "challenge_url": _challenge_url(p)}


# The API's messages for these speak to the merchant ("The customer did not pass…"); this page speaks to the
# customer.
_FOR_THE_CUSTOMER = {
    "authentication_failed": "Your bank could not confirm that it was you, so the payment was not made.",
    "authentication_timeout": "The confirmation with your bank was not completed in time, so the payment was not made.",
}


def _challenge_url(p: Row) -> str | None:
    url = p.get("challenge_url")  # next_action's url (domain/authentication.next_action)
    return url if p["status"] == Status.REQUIRES_ACTION and isinstance(url, str) else None


def return_url(public_url: str, order_id: str, embed_origin: str | None) -> str:
    """Where the bank's challenge sends the customer back (paygate adds `payment_id`): this checkout, in
    the SDK's modal again if it was opened there. Built here, never taken from the page, so a link holder
    cannot make paygate's redirect point anywhere else."""
    url = f"{public_url.rstrip('/')}/checkout/{quote(order_id, safe='')}"
    return f"{url}?{urlencode({'embed': 1, 'origin': embed_origin})}" if embed_origin else url


async def _order(conn: Conn, order_id: str) -> Row | None:
    if len(order_id) > 64:
        return None
    return await orders.any_merchant(conn, order_id)


async def _attempts_left(conn: Conn, request: Request, order: Row) -> int:
    """Failed payments the order still accepts before it refuses more (PAYGATE_ORDER_MAX_FAILED_PAYMENTS):
    the page offers a retry only while this is positive."""
    limit = gateway(request).settings.order_max_failed_payments
    return max(0, limit - await orders.failed_payments(conn, order["id"]))


async def _relevant_payment(conn: Conn, order: Row) -> Row | None:
    """The payment that decides what the page shows: a captured one if any, else the newest."""
    rows = await payments.page(conn, order["merchant_id"], order_id=order["id"], limit=20)
    for p in rows:
        if p["status"] in _PAID:
            return p
    return rows[0] if rows else None


async def _saved_cards(conn: Conn, order: Row) -> list[dict[str, Any]]:
    """The order's customer's saved cards, as the page shows them: brand, last4 and expiry, nothing more
    (these rows hold nothing of the vault)."""
    if order.get("customer") is None:
        return []
    rows = await payment_methods.page_of_customer(conn, order["merchant_id"], order["customer"], limit=10)
    return [{"id": r["id"], "brand": r["brand"], "last4": r["last4"], "exp_month": r["exp_month"],
             "exp_year": r["exp_year"]} for r in rows[:10]]


@router.get("/checkout/{order_id}")
async def checkout_page(
    request: Request, order_id: str, key: str | None = None, embed: int = 0, origin: str | None = None,
    payment_id: str | None = None,
) -> Response:
    try:
        public_surface(request)
        return await _checkout_page(request, order_id, key, embed, origin, payment_id)
    except RateLimited as err:
        parent = origin if origin and _ORIGIN.fullmatch(origin) else ""
        return html("checkout_error.html", status=429, frame="checkout", parent_origin=parent, headers=err.headers(),
                    title="Too many requests", message="Too many requests from your network. Wait a minute, "
                                                       "then reload this page.")


async def _checkout_page(request: Request, order_id: str, key: str | None, embed: int, origin: str | None,
                         payment_id: str | None) -> Response:
    gw = gateway(request)
    parent = origin if origin and _ORIGIN.fullmatch(origin) else ""  # the SDK's embedding page: frame_ancestors
    async with gw.pool.connection() as conn:
        order = await _order(conn, order_id)
        if order is None:
            return html("checkout_error.html", status=404, frame="checkout", parent_origin=parent,
                        title="Order not found",
                        message="This payment link is not valid. Ask the shop for a new one.")
        merchant = await merchants.by_id(conn, order["merchant_id"])
        # back from the bank's challenge (§15): that payment decides, unless the order got paid meanwhile
        returned = await _returned_payment(conn, order, payment_id) if order["status"] != "paid" else None
        payment = returned or await _relevant_payment(conn, order)
        attempts_left = await _attempts_left(conn, request, order)
        saved = await _saved_cards(conn, order)
    if key is not None:
        who = await lookup_key(request, key)
        if who is None or who.kind != "publishable" or who.merchant_id != order["merchant_id"]:
            return html("checkout_error.html", status=403, frame="checkout", parent_origin=parent,
                        title="Checkout unavailable",
                        message="This checkout cannot be opened with this key. "
                                "Use the publishable key (pk_test_…) of the merchant that created the order.")
    if order["status"] == "paid" and payment is not None and payment["status"] in _PAID:
        state = "paid"
    elif payment is not None and payment["status"] == Status.PENDING:
        state = "processing"  # a UPI approval or a bank answer still awaited (the page was reloaded): follow it
    elif payment is not None and payment["status"] == Status.REQUIRES_ACTION:
        state = "action"  # the bank's challenge not answered yet: offer it again, and follow the payment
    elif returned is not None and returned["status"] == Status.FAILED:
        state = "failed"  # the challenge (or the authorization after it) failed: say so, offer a retry
    elif attempts_left == 0 and order["status"] != "paid":
        state = "exhausted"  # no payment can be made any more: say so, rather than offer a form that is refused
    else:
        state = "form"
    return html(
        "checkout.html", frame="checkout", parent_origin=parent, order=order,
        merchant_name=merchant["name"] if merchant else "",
        amount=money(order["amount"], order["currency"]), state=state, payment=_public(payment),
        embedded=bool(embed), attempts_left=attempts_left, saved_cards=saved,
        has_customer=order.get("customer") is not None, order_return_url=order.get("return_url") or "",
    )


async def _returned_payment(conn: Conn, order: Row, payment_id: str | None) -> Row | None:
    """The payment named by `?payment_id=` if it is one of this order's (anything else is ignored: the
    page then shows the order as usual)."""
    if payment_id is None or not 0 < len(payment_id) <= 64:
        return None
    p = await payments.get(conn, order["merchant_id"], payment_id)
    return p if p is not None and p["order_id"] == order["id"] else None


@router.get("/checkout/{order_id}/success")
async def success_page(request: Request, order_id: str, payment_id: str = "") -> Response:
    """The standalone success page: the order, and the payment that paid it. A payment that is not this
    order's, or not captured, gets the same 404 page as an unknown one (the link proves nothing else)."""
    try:
        public_surface(request)
    except RateLimited as err:
        return html("checkout_error.html", status=429, frame="checkout", headers=err.headers(),
                    title="Too many requests", message="Too many requests from your network. Wait a minute, "
                                                       "then reload this page.")
    async with gateway(request).pool.connection() as conn:
        order = await _order(conn, order_id)
        p = None
        if order is not None and 0 < len(payment_id) <= 64:
            p = await payments.get(conn, order["merchant_id"], payment_id)
        merchant = await merchants.by_id(conn, order["merchant_id"]) if order is not None else None
    if order is None or p is None or p["order_id"] != order["id"] or p["status"] not in _PAID:
        return html("checkout_error.html", status=404, frame="checkout", title="Payment not found",
                    message="There is no successful payment for this order at this address. "
                            "If you paid, the shop has your payment; ask them for its reference.")
    paid_at = next((h["at"] for h in reversed(p["status_history"] or []) if h.get("status") == "captured"), None)
    shop = order.get("return_url")  # §15: back to it with payment_id and status, as checkout.js's link
    back_url = authentication.with_query(shop, payment_id=p["id"], status=p["status"]) if shop else None
    return html("checkout_success.html", frame="checkout", order=order, payment_id=p["id"],
                merchant_name=merchant["name"] if merchant else "", amount=money(order["amount"], order["currency"]),
                paid_at=paid_at, back_url=back_url)


# The public limit as a dependency: it runs before the body is parsed, so malformed bodies count as well.
@router.post("/checkout/{order_id}/pay", status_code=201, dependencies=[Depends(public_surface)])
async def checkout_pay(request: Request, order_id: str, body: CheckoutPay) -> Response:
    """Pay the order as its merchant's publishable key would (same use case), with its own key namespace."""
    gw = gateway(request)
    async with gw.pool.connection() as conn:
        order = await _order(conn, order_id)
    if order is None:
        raise NotFound("order", order_id)
    who = Principal(order["merchant_id"], "publishable")
    pm = body.payment_method
    # a saved card must be the order's customer's: saved_methods.resolve takes the customer from the order
    req = payment_service.NewPayment(payment_method=pm if isinstance(pm, str) else pm.as_dict(), order_id=order["id"],
                                     save_payment_method=body.save_payment_method,
                                     return_url=return_url(gw.settings.public_url, order["id"], body.embed_origin))
    return await idempotent(request, who, lambda key: payment_service.create(gw, who, req, key), namespace="checkout")


@router.get("/checkout/{order_id}/status", dependencies=[Depends(public_surface)])
async def checkout_status(request: Request, order_id: str, payment_id: str | None = None) -> Response:
    """The order's status and one of its payments (the one being paid, else the relevant one)."""
    gw = gateway(request)
    async with gw.pool.connection() as conn:
        order = await _order(conn, order_id)
        if order is None:
            raise NotFound("order", order_id)
        payment = None
        if payment_id is not None:
            payment = await payments.get(conn, order["merchant_id"], payment_id)
            if payment is None or payment["order_id"] != order["id"]:
                raise NotFound("payment", payment_id)
        else:
            payment = await _relevant_payment(conn, order)
        attempts_left = await _attempts_left(conn, request, order)
    return json({"order": {"id": order["id"], "status": order["status"], "attempts_left": attempts_left},
                 "payment": _public(payment)}, headers=_NO_STORE)
