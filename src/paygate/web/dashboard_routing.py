"""The dashboard's Acquirers page (health, approval rate, attempts) and the merchant's routing (view and
edit, API.md §11 and §14). The editor takes the routing as JSON, the body PUT /v1/routing takes, and
validates it with the same function (`services.routing.validate` → `domain.routing.parse`); a refused
document is shown again with the API's message and the path it names, and nothing is saved."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from paygate.errors import InvalidRequest
from paygate.http.context import gateway
from paygate.services import acquirer_health
from paygate.services import routing as routing_service
from paygate.web import auth
from paygate.web.dashboard import _back, _checked_form, _message, _new_idem, _page
from paygate.web.forms import run_idempotent

router = APIRouter(include_in_schema=False)


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


@router.get("/dashboard/acquirers")
async def acquirers_page(request: Request) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    listed = await acquirer_health.list_acquirers(gateway(request))
    rows = [{**a, "rate": _percent(a["approval_rate"])} for a in listed["data"]]
    return _page("dashboard/acquirers.html", session, acquirers=rows, nav="acquirers")


def _editable(routing: dict[str, Any]) -> str:
    return orjson.dumps({"default": routing["default"], "rules": routing["rules"]},
                        option=orjson.OPT_INDENT_2).decode()


async def _routing_page(request: Request, session: auth.Session, *, status: int = 200, text: str | None = None,
                        error: str | None = None, param: str | None = None, notice: str | None = None) -> Response:
    gw = gateway(request)
    _, routing = await routing_service.current(gw, session.merchant_id)
    return _page("dashboard/routing.html", session, status=status, routing=routing,
                 text=_editable(routing) if text is None else text, error=error, param=param, notice=notice,
                 configured=routing_service.configured(gw), idem=_new_idem(), nav="routing")


@router.get("/dashboard/routing")
async def routing_page(request: Request, done: str | None = None) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    return await _routing_page(request, session, notice=_message(done))


@router.post("/dashboard/routing")
async def save_routing(request: Request) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    text = form.get("routing", "")
    gw = gateway(request)
    try:
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            raise InvalidRequest("parameter_invalid", f"The routing is not valid JSON ({err}).") from None
        routing = routing_service.validate(gw, document)
    except InvalidRequest as err:
        return await _routing_page(request, session, status=400, text=text, error=err.message, param=err.param)
    who = session.principal
    outcome = await run_idempotent(gw, who, request.url.path, form,
                                   lambda key: routing_service.replace(gw, who, routing, key))
    if outcome.status >= 400:
        return _back("/dashboard/routing", done="routing_not_saved")
    return _back("/dashboard/routing", done="routing_saved")
