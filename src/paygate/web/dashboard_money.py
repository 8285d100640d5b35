"""The dashboard's Disputes and Settlements pages (API.md §17, §18).

Disputes: each open one with its deadline, an evidence form and an accept button (CSRF-checked forms that
run the API's use cases; both answers are idempotent by the dispute's state). Settlements: the batches with
the merchant's lines, and each batch's lines and amount mismatches."""

from __future__ import annotations

import re

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from paygate.domain import disputes as dispute_rules
from paygate.errors import NotFound, PaygateError
from paygate.http.context import gateway
from paygate.services import disputes as dispute_service
from paygate.services import settlements as settlement_service
from paygate.services.gateway import utcnow
from paygate.store import disputes as dispute_store
from paygate.web import auth
from paygate.web.dashboard import _back, _checked_form, _not_found, _page
from paygate.web.forms import run_idempotent

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
_ID = re.compile(r"^[a-z]{2,4}_[0-9a-z]{1,40}$")
NOTICES = {"under_review": "Evidence submitted: the bank decides within a few days.",
           "lost": "Dispute accepted: it is lost and its amount stays with the cardholder.",
           "won": "The bank has already decided: won."}
ERRORS = {"dispute_not_open": "This dispute no longer takes an answer.",
          "parameter_invalid": "Evidence must be 1-20,000 characters of text.",
          "service_unavailable": "The bank could not be reached; try again in a moment."}


@router.get("/dashboard/disputes")
async def disputes_page(request: Request, status: str | None = None, done: str | None = None,
                        error: str | None = None) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    wanted = status if status in dispute_rules.STATUSES else None
    async with gateway(request).pool.connection() as conn:
        rows = await dispute_store.page(conn, session.merchant_id, payment_id=None, status=wanted, limit=PAGE_SIZE)
    now = utcnow()
    items = [{**dispute_rules.view(r), "answerable": dispute_rules.answerable(r["status"], r["evidence_due_by"], now),
              "overdue": r["status"] == dispute_rules.OPEN and r["evidence_due_by"] <= now}
             for r in rows[:PAGE_SIZE]]
    return _page("dashboard/disputes.html", session, disputes=items, wanted=wanted,
                 statuses=sorted(dispute_rules.STATUSES), notice=NOTICES.get(done or ""),
                 error=ERRORS.get(error or "", "The action failed." if error else None), nav="disputes")


@router.post("/dashboard/disputes/{dispute_id}/{action}")
async def dispute_action(request: Request, dispute_id: str, action: str) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    if action not in ("evidence", "accept") or not _ID.match(dispute_id):
        return _not_found(session, "dispute")
    gw, who = gateway(request), session.principal
    try:
        evidence = dispute_service.evidence_of({"text": form.get("evidence", "")}) if action == "evidence" else None
        outcome = await run_idempotent(gw, who, request.url.path, form,
                                       lambda key: dispute_service.answer(gw, who, dispute_id, evidence, key))
    except NotFound:
        return _not_found(session, "dispute")
    except PaygateError as err:
        return _back("/dashboard/disputes", error=err.code)
    if outcome.status != 200:  # a stored refusal (404, 409) replayed
        return _back("/dashboard/disputes", error=str(orjson.loads(outcome.body)["error"]["code"]))
    return _back("/dashboard/disputes", done=str(orjson.loads(outcome.body)["status"]))


@router.get("/dashboard/settlements")
async def settlements_page(request: Request) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    items, _ = await settlement_service.page(gateway(request), session.principal, None, PAGE_SIZE)
    return _page("dashboard/settlements.html", session, settlements=items, nav="settlements")


@router.get("/dashboard/settlements/{settlement_id}")
async def settlement_page(request: Request, settlement_id: str) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    if not _ID.match(settlement_id):
        return _not_found(session, "settlement")
    try:
        s = await settlement_service.retrieve(gateway(request), session.principal, settlement_id)
    except NotFound:
        return _not_found(session, "settlement")
    return _page("dashboard/settlement.html", session, s=s, nav="settlements")
