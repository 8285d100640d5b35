"""The dashboard's Customers page (API.md §11, §16): search by email or name, a customer's page with its
saved payment methods (brand, last4, expiry — never more: the rows read here hold nothing of the vault),
and a detach button (CSRF-checked and idempotent like every dashboard form) that erases the card number.

A customer's payments: the newest payments that name it (`payments.customer`, the cus_ id — not the
merchant's free-form `customer_id`)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from paygate.domain import customer_views, views
from paygate.errors import NotFound
from paygate.http.context import gateway
from paygate.services import customers as service
from paygate.services import payment_methods as pm_service
from paygate.store import customers as customer_store
from paygate.store import payment_methods as pm_store
from paygate.store import payments as payment_store
from paygate.web import auth
from paygate.web.dashboard import _back, _checked_form, _new_idem, _not_found, _page
from paygate.web.forms import run_idempotent

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
_ID = re.compile(r"^[a-z]{2,4}_[0-9a-z]{1,40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NOTICES = {"detached": "Payment method detached: its card number is erased and it can no longer be charged.",
           "detach_failed": "The payment method could not be detached."}


@router.get("/dashboard/customers")
async def customer_list(request: Request, q: str = "", starting_after: str | None = None) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    q = _CONTROL.sub("", q).strip()[:255]
    gw, who = gateway(request), session.principal
    after = starting_after if starting_after and _ID.match(starting_after) else None
    if q.startswith("cus_"):  # an id pasted into the search box
        async with gw.pool.connection() as conn:
            one = await customer_store.get(conn, who.merchant_id, q) if _ID.match(q) else None
        rows = [one] if one is not None else []
    else:
        rows = await service.page(gw, who, search=q or None, starting_after=after, limit=PAGE_SIZE)
    next_url = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        next_url = "/dashboard/customers?" + urlencode({"q": q, "starting_after": rows[-1]["id"]})
    return _page("dashboard/customers.html", session, customers=[customer_views.customer(r) for r in rows], q=q,
                 next_url=next_url, nav="customers")


@router.get("/dashboard/customers/{customer_id}")
async def customer_page(request: Request, customer_id: str, done: str | None = None) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    if not _ID.match(customer_id):
        return _not_found(session, "customer")
    gw, who = gateway(request), session.principal
    try:
        customer = await service.retrieve(gw, who, customer_id)
    except NotFound:
        return _not_found(session, "customer")
    methods = await service.payment_methods_of(gw, who, customer_id, limit=100)
    async with gw.pool.connection() as conn:
        paid = await payment_store.page(conn, who.merchant_id, customer=customer_id, limit=PAGE_SIZE)
    return _page("dashboard/customer.html", session, customer=customer,
                 payments=[views.payment(p) for p in paid[:PAGE_SIZE]],
                 methods=[customer_views.payment_method(m) for m in methods[:100]],
                 detach_idem={m["id"]: _new_idem() for m in methods}, notice=NOTICES.get(done or ""),
                 nav="customers")


@router.post("/dashboard/customers/{customer_id}/payment_methods/{pm_id}/detach")
async def detach(request: Request, customer_id: str, pm_id: str) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    gw, who = gateway(request), session.principal
    if not (_ID.match(customer_id) and _ID.match(pm_id)):
        return _not_found(session, "payment method")
    async with gw.pool.connection() as conn:
        row = await pm_store.get(conn, who.merchant_id, pm_id)
    if row is None or row["customer_id"] not in (customer_id, None):  # the form is for this customer's method
        return _not_found(session, "payment method")
    outcome = await run_idempotent(gw, who, request.url.path, form,
                                   lambda key: pm_service.detach(gw, who, pm_id, key))
    return _back(f"/dashboard/customers/{customer_id}", done="detached" if outcome.status == 200 else "detach_failed")
