"""The merchant dashboard (API.md §11): home with stats and credentials (keys can be rolled, §19), payments
with their actions, and webhooks with their delivery log.

Server-rendered; every action is a CSRF-checked form that runs the same use case as the API, for the
session's merchant with secret-key rights, and answers with a redirect (post/redirect/get) carrying a
short result code that the page turns into a message from a fixed list (no reflected text).
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from paygate.domain import money as money_module
from paygate.domain import views
from paygate.domain.payments import REFUNDABLE, Status
from paygate.errors import InvalidRequest, PaygateError
from paygate.http.context import context, gateway
from paygate.services import exports as export_service
from paygate.services import merchants as merchant_service
from paygate.services import orders as order_service
from paygate.services import payments as payment_service
from paygate.services import refunds as refund_service
from paygate.services import webhook_endpoints as webhook_service
from paygate.services.gateway import Outcome, utcnow
from paygate.store import merchants, payments, refunds
from paygate.store import webhooks as webhook_store
from paygate.web import auth
from paygate.web.forms import parse_amount, read_form, run_idempotent
from paygate.web.home_chart import home_chart
from paygate.web.render import html, money
from paygate.webhooks import signing

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
_CODE = re.compile(r"^[a-z_]{1,64}$")
_ID = re.compile(r"^[a-z]{2,4}_[0-9a-z]{1,40}$")
MESSAGES = {
    "captured": "Payment captured.",
    "capturing": "Capture accepted; the bank's confirmation is on its way.",
    "voided": "Authorization voided: the hold on the customer's funds is released.",
    "voiding": "Void accepted; the bank's confirmation is on its way.",
    "refund_succeeded": "Refund succeeded.",
    "refund_pending": "Refund accepted; it completes in the background.",
    "refund_failed": "The bank refused the refund.",
    "retry_succeeded": "Delivered: the endpoint answered 2xx.",
    "retry_failed": "The endpoint did not accept the delivery.",
    "test_sent": "Test webhook queued: it appears in the delivery log below as webhook.test.",
    "payment_not_capturable": "This payment cannot be captured in its current status.",
    "payment_not_voidable": "This payment cannot be voided in its current status.",
    "payment_not_refundable": "Only captured payments can be refunded.",
    "amount_exceeds_capturable": "The amount is more than can be captured.",
    "amount_exceeds_refundable": "The amount is more than remains refundable.",
    "payment_in_flight": "Another operation on this payment is in progress; try again in a moment.",
    "idempotency_key_in_use": "This action is already running; reload in a moment.",
    "parameter_invalid": "Check the amount: a positive number with the currency's decimals.",
    "amount_too_large": "The amount is too large.",
    "endpoint_disabled": "The endpoint is disabled; enable it first.",
    "endpoint_deleted": "The endpoint was deleted.",
    "resource_missing": "Not found.",
    "grace_invalid": "Choose how long the current keys keep working.",
    "routing_saved": "Routing saved: new payments follow it.",
    "routing_not_saved": "The routing was not saved.",
}


def _new_idem() -> str:
    return secrets.token_urlsafe(18)


def _message(code: str | None) -> str | None:
    if code is None or not _CODE.match(code):
        return None
    return MESSAGES.get(code, f"The action failed ({code}).")


def _back(path: str, **params: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode(params)}" if params else path, status_code=303)


def _error_code(outcome: Outcome) -> str:
    body: dict[str, Any] = orjson.loads(outcome.body)
    return str(body.get("error", {}).get("code", "api_error"))


def _page(template: str, session: auth.Session, *, status: int = 200, **context: Any) -> Response:
    context.setdefault("nav", "")
    return html(template, status=status, session=session, csrf_token=session.csrf_token, **context)


def _not_found(session: auth.Session, what: str) -> Response:
    return _page("dashboard/error.html", session, status=404, title="Not found", message=f"No such {what}.")


# --- home ----------------------------------------------------------------------------------------------

async def _checked_form(request: Request) -> tuple[auth.Session, dict[str, str]] | Response:
    """Every dashboard form POST: a live session and a valid CSRF token, else the answer to give instead."""
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    try:
        form = await read_form(request)
    except InvalidRequest as err:  # a control character in a field: nothing runs
        return _page("dashboard/error.html", session, status=400, title="Invalid input", message=err.message)
    if not auth.csrf_ok(request, session, form):
        return auth.forbidden()
    return session, form


@router.get("/dashboard")
async def home(request: Request, error: str | None = None) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    return await _home_page(request, session, error=_message(error))


async def _home_page(request: Request, session: auth.Session, *, error: str | None = None,
                     rolled: merchant_service.RolledKeys | None = None) -> Response:
    async with gateway(request).pool.connection() as conn:
        stats = await payments.stats(conn, session.merchant_id)
        volume = await payments.volume_by_currency(conn, session.merchant_id)
        keys = await merchants.key_hints(conn, session.merchant_id)
        recent = await payments.page(conn, session.merchant_id, limit=5)
        chart = await home_chart(conn, session.merchant_id)  # §11 v2 volume-chart
    decided = int(stats["succeeded"]) + int(stats["failed"])
    rate = f"{100 * int(stats['succeeded']) / decided:.1f}%" if decided else "—"
    totals = [money(int(v["captured"]), v["currency"]) for v in volume]
    current = {k["kind"]: k["display"] for k in reversed(keys) if k["revoked_at"] is None}  # the newest live key
    return _page("dashboard/home.html", session, total=int(stats["total"]), totals=totals, rate=rate,
                 decided=decided, keys=keys, current_pk=current.get("publishable"),
                 current_sk_last4=current.get("secret"), recent=[views.payment(p) for p in recent[:5]], nav="home",
                 error=error, idem=_new_idem(), currencies=sorted(money_module.CURRENCY_EXPONENTS),
                 rolled=rolled, grace_choices=GRACE_CHOICES, chart=chart,
                 old_keys_stopped=bool(rolled and rolled.old_keys_expire_at and rolled.old_keys_expire_at <= utcnow()))


# The credentials card's choices for how long the old keys keep working after a roll.
GRACE_CHOICES = {0: "stop at once", 3600: "keep working for 1 hour", 86400: "keep working for 24 hours"}


@router.post("/dashboard/keys/roll")
async def roll_keys(request: Request) -> Response:
    """New API keys (API.md §19), answered with the home page itself, not a redirect: the new keys are shown
    this once. Not idempotent on purpose: a replay would have to store the new secret key to answer."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    grace = form.get("grace", "")
    if not grace.isascii() or not grace.isdigit() or int(grace) not in GRACE_CHOICES:
        return _back("/dashboard", error="grace_invalid")
    rolled = await merchant_service.roll_keys(gateway(request).pool, session.merchant_id, int(grace))
    context(request).keys.forget()  # this process at once; the others on the roll's NOTIFY
    return await _home_page(request, session, rolled=rolled)


@router.post("/dashboard/orders")
async def create_test_order(request: Request) -> Response:
    """A test order from the home page, to try the hosted checkout (answered by a redirect to it)."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    currency = money_module.normalize_currency(form.get("currency", "USD")) or "USD"
    try:
        amount = parse_amount(form.get("amount", ""), currency)
        if amount is None:
            raise InvalidRequest("parameter_invalid", "amount is required.", param="amount")
    except PaygateError as err:
        return _back("/dashboard", error=err.code)
    gw = gateway(request)
    who = session.principal
    req = order_service.NewOrder(amount=amount, currency=currency, receipt="dashboard test order")
    outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: order_service.create(gw, who, req, key))
    return RedirectResponse(f"/checkout/{orjson.loads(outcome.body)['id']}", status_code=303)


# --- payments ------------------------------------------------------------------------------------------

@router.get("/dashboard/payments")
async def payment_list(
    request: Request, q: str = "", status: str = "", starting_after: str | None = None,
) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    q = q.strip()[:255]
    status_filter = status if status in Status.__members__.values() else None
    async with gateway(request).pool.connection() as conn:
        if q.startswith("pay_"):
            one = await payments.get(conn, session.merchant_id, q)
            rows = [one] if one is not None and status_filter in (None, one["status"]) else []
        else:
            by_order = q.startswith("ord_")
            rows = await payments.page(
                conn, session.merchant_id, status=status_filter, order_id=q if by_order else None,
                customer_id=(q or None) if not by_order else None,
                starting_after=starting_after if starting_after and _ID.match(starting_after) else None,
                limit=PAGE_SIZE)
    has_more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_url = None
    if has_more:
        next_url = "/dashboard/payments?" + urlencode({"q": q, "status": status_filter or "",
                                                      "starting_after": rows[-1]["id"]})
    export_url = "/dashboard/payments.csv?" + urlencode({"q": q, "status": status_filter or ""})
    return _page("dashboard/payments.html", session, payments=[views.payment(p) for p in rows], q=q,
                 export_url=export_url,
                 selected_status=status_filter or "", statuses=[s.value for s in Status], next_url=next_url,
                 nav="payments")


def _export_filters(q: str, status: str) -> export_service.Filters:
    """The list's search box and status filter, with the same meaning as in the list."""
    q = q.strip()[:255]
    return export_service.Filters(
        status=status if status in Status.__members__.values() else None,
        payment_id=q if q.startswith("pay_") else None,
        order_id=q if q.startswith("ord_") else None,
        customer_id=(q or None) if not q.startswith(("pay_", "ord_")) else None)


@router.get("/dashboard/payments.csv")
async def export_payments(request: Request, q: str = "", status: str = "") -> Response:
    """Every payment the list's filters match, as CSV, streamed (services.exports)."""
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    body = export_service.payments_csv(gateway(request).pool, session.merchant_id, _export_filters(q, status))
    name = f"payments-{session.merchant_id}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.csv"
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


@router.get("/dashboard/payments/{payment_id}")
async def payment_detail(request: Request, payment_id: str, done: str | None = None,
                         error: str | None = None) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    async with gateway(request).pool.connection() as conn:
        p = await payments.get(conn, session.merchant_id, payment_id)
        refund_rows = await refunds.page(conn, session.merchant_id, payment_id=payment_id, limit=100) if p else []
    if p is None:
        return _not_found(session, "payment")
    status = Status(p["status"])
    remaining = p["amount_captured"] - p["amount_refunded"] - p["amount_refund_reserved"]
    return _page(
        "dashboard/payment.html", session, payment=views.payment(p), refunds=[views.refund(r) for r in refund_rows],
        # a payment awaiting the customer's authentication holds nothing yet, but may be cancelled (§15.4)
        can_capture=status is Status.AUTHORIZED, can_void=status in (Status.AUTHORIZED, Status.REQUIRES_ACTION),
        can_refund=status in REFUNDABLE and remaining > 0, refundable=remaining, notice=_message(done),
        error=_message(error), idem_capture=_new_idem(), idem_void=_new_idem(), idem_refund=_new_idem(),
        nav="payments",
    )


@router.post("/dashboard/payments/{payment_id}/{action}")
async def payment_action(request: Request, payment_id: str, action: str) -> Response:
    """capture | void | refund, each through the API's own use case and idempotency rules."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    if action not in ("capture", "void", "refund"):
        return _not_found(session, "action")
    gw = gateway(request)
    who = session.principal
    here = f"/dashboard/payments/{payment_id}"
    async with gw.pool.connection() as conn:
        p = await payments.get(conn, session.merchant_id, payment_id)
    if p is None:
        return _not_found(session, "payment")
    try:
        amount = parse_amount(form.get("amount", ""), p["currency"])
        if action == "capture":
            outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: payment_service.capture(
                gw, who, payment_id, amount, key))
        elif action == "void":
            outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: payment_service.void(
                gw, who, payment_id, key))
        else:
            reason = form.get("reason", "").strip()[:1000] or None
            outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: refund_service.create(
                gw, who, payment_id=payment_id, amount=amount, reason=reason, metadata={}, key=key))
    except PaygateError as err:
        return _back(here, error=err.code)
    if outcome.status >= 400:  # a stored error, replayed
        return _back(here, error=_error_code(outcome))
    result = orjson.loads(outcome.body)
    done = f"refund_{result['status']}" if action == "refund" else str(result["status"])
    return _back(here, done=done)


# --- webhooks ------------------------------------------------------------------------------------------

async def _url_problem(request: Request, url: str) -> str | None:
    """The API's validator (syntax, then where the host resolves to: API.md §19)."""
    try:
        await webhook_service.validate_url(gateway(request), url)
    except InvalidRequest as err:
        return err.message
    return None


async def _webhooks_page(request: Request, session: auth.Session, *, status: int = 200,
                         created: dict[str, Any] | None = None, rotated: dict[str, Any] | None = None,
                         notice: str | None = None, error: str | None = None, url: str = "") -> Response:
    async with gateway(request).pool.connection() as conn:
        endpoints = await webhook_store.page_endpoints(conn, session.merchant_id, limit=50)
        deliveries = await webhook_store.page_deliveries(conn, session.merchant_id, limit=PAGE_SIZE)
    return _page(
        "dashboard/webhooks.html", session, status=status, endpoints=[views.webhook_endpoint(e)
                                                                      for e in endpoints[:50]],
        deliveries=[views.webhook_delivery(d) for d in deliveries[:PAGE_SIZE]], created=created, rotated=rotated,
        notice=notice, error=error, url=url, idem=_new_idem(), retry_idem={d["id"]: _new_idem() for d in deliveries},
        endpoint_idem={e["id"]: (_new_idem(), _new_idem()) for e in endpoints}, nav="webhooks",
    )


@router.get("/dashboard/webhooks")
async def webhooks_page(request: Request, done: str | None = None, error: str | None = None) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    return await _webhooks_page(request, session, notice=_message(done), error=_message(error))


@router.post("/dashboard/webhooks")
async def save_webhook(request: Request) -> Response:
    """Create an endpoint for every event type. Answered with the page itself (not a redirect): its
    signing secret is shown this once."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    url = form.get("url", "").strip()
    if (problem := await _url_problem(request, url)) is not None:
        return await _webhooks_page(request, session, status=400, error=problem, url=url)
    gw = gateway(request)
    who = session.principal
    legacy = form.get("legacy_signature") == "on"
    outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: webhook_service.create_endpoint(
        gw, who, url=url, enabled_events=["*"], description="Added in the dashboard", key=key,
        legacy_signature=legacy),
        restore=lambda stored: signing.unseal(stored, gw.settings.secret_key))  # the secret is stored sealed
    return await _webhooks_page(request, session, status=201, created=orjson.loads(outcome.body))


@router.post("/dashboard/webhooks/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: str) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    gw = gateway(request)
    who = session.principal
    try:
        outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: webhook_service.retry_delivery(
            gw, who, delivery_id, key))
    except PaygateError as err:
        return _back("/dashboard/webhooks", error=err.code)
    if outcome.status >= 400:
        return _back("/dashboard/webhooks", error=_error_code(outcome))
    return _back("/dashboard/webhooks", done=f"retry_{orjson.loads(outcome.body)['status']}")



@router.post("/dashboard/webhooks/{endpoint_id}/rotate_secret")
async def regenerate_secret(request: Request, endpoint_id: str) -> Response:
    """rotate_secret (API.md §8): a new secret, shown this once on the page itself; the previous one keeps
    signing beside it for 24 h, so the merchant's receiver keeps working while it is updated."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    gw = gateway(request)
    who = session.principal
    try:
        outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: webhook_service.rotate_secret(
            gw, who, endpoint_id, key), restore=lambda stored: signing.unseal(stored, gw.settings.secret_key))
    except PaygateError as err:
        return _back("/dashboard/webhooks", error=err.code)
    if outcome.status >= 400:
        return _back("/dashboard/webhooks", error=_error_code(outcome))
    return await _webhooks_page(request, session, rotated=orjson.loads(outcome.body))


@router.post("/dashboard/webhooks/{endpoint_id}/test")
async def send_test_webhook(request: Request, endpoint_id: str) -> Response:
    """POST /v1/webhook_endpoints/{id}/test from the page: a webhook.test for this endpoint alone."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    gw = gateway(request)
    who = session.principal
    try:
        outcome = await run_idempotent(gw, who, request.url.path, form, lambda key: webhook_service.send_test(
            gw, who, endpoint_id, key))
    except PaygateError as err:
        return _back("/dashboard/webhooks", error=err.code)
    if outcome.status >= 400:
        return _back("/dashboard/webhooks", error=_error_code(outcome))
    return _back("/dashboard/webhooks", done="test_sent")
