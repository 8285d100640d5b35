"""The customer's way back from the bank's challenge (API.md §15): keyless browser pages, limited per client
address like the hosted checkout (API.md §19).

- `GET /payments/{id}/authentication/return`: where the bank sends the browser (303) once the challenge is
  answered. paygate asks the bank for the result (the browser carries none), finishes the authorization, then
  303s to the payment's `return_url` with `payment_id` added to its query, or to the outcome page.
- `GET /payments/{id}/authentication`: the outcome page (`payment-outcome`, `payment-status`), for payments
  made without a `return_url`, and the waiting page of any payment whose bank answer is not known yet
  (`payment-waiting`; it reloads itself until the outcome is known).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from paygate.domain.payments import FINAL, Status
from paygate.errors import RateLimited
from paygate.http.auth import public_surface
from paygate.http.context import context
from paygate.services import authentication
from paygate.web.render import html

router = APIRouter(include_in_schema=False)

_SUCCEEDED = frozenset({Status.AUTHORIZED, Status.CAPTURED, Status.PARTIALLY_REFUNDED, Status.REFUNDED})
_HEADLINES = {Status.AUTHORIZED: "Payment authorized", Status.CAPTURED: "Payment successful",
              Status.FAILED: "Payment failed", Status.VOIDED: "Payment cancelled",
              Status.REQUIRES_ACTION: "Waiting for your bank", Status.PENDING: "Payment processing"}


def _message(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return html("checkout_error.html", status=status, title=title, message=message, headers=headers)


def _limited(err: RateLimited) -> Response:
    return _message(429, "Too many requests", "Too many requests from your network. Wait a minute, then reload "
                    "this page.", err.headers())


@router.get("/payments/{payment_id}/authentication/return")
async def authentication_return(request: Request, payment_id: str) -> Response:
    try:
        public_surface(request)
    except RateLimited as err:
        return _limited(err)
    target = await authentication.browser_return(context(request).gateway, payment_id)
    if target is None:
        return _message(404, "No such payment", "This payment does not exist.")
    # 303: the browser GETs the target, whatever brought it here (the bank's form POST)
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store",
                                                               "Referrer-Policy": "no-referrer"})


@router.get("/payments/{payment_id}/authentication")
async def authentication_outcome(request: Request, payment_id: str) -> Response:
    try:
        public_surface(request)
    except RateLimited as err:
        return _limited(err)
    async with context(request).gateway.pool.connection() as conn:
        p = await authentication.find(conn, payment_id)
    if p is None:
        return _message(404, "No such payment", "This payment does not exist.")
    status = Status(p["status"])
    return html("authentication_outcome.html", payment_id=p["id"], payment_status=status.value, amount=p["amount"],
                refresh_url=f"/payments/{quote(p['id'], safe='')}/authentication/return",
                currency=p["currency"], succeeded=status in _SUCCEEDED, final=status in FINAL,
                headline=_HEADLINES.get(status, "Payment " + status.value.replace("_", " ")),
                failure_message=p["failure_message"] if status is Status.FAILED else None)
