"""The simulator's dispute and settlement endpoints (API.md §12 v2). Test and inspection endpoints: never
faulted. Paygate's side of a dispute is two calls of our own design (docs/disputes.md):

- `POST /v1/disputes/{id}/evidence` `{"text"}` → 200 the dispute `under_review` (decided 1-3 s later);
- `POST /v1/disputes/{id}/accept` → 200 the dispute `lost`.

Both are idempotent by state: repeating the same answer returns the dispute unchanged; the other answer
once one is given is 409 `dispute_not_open`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from paygate.simbank import money
from paygate.simbank.store import Pool

MAX_AMOUNT = 99_999_999
LINE_TYPES = frozenset({"capture", "refund", "dispute", "dispute_reversal"})


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str, param: str | None = None) -> Response:
    err: dict[str, Any] = {"type": "invalid_request_error" if status != 409 else "invalid_state_error",
                           "code": code, "message": message}
    if param:
        err["param"] = param
    return _json(status, {"error": err})


class _Bad(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise _Bad("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _Bad("Expected a JSON object.")
    for name in body:
        if name not in allowed:
            raise _Bad(f"Unknown field {name}.", name)
    return body


def _ref(value: Any, param: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise _Bad(f"{param} must be a string of 1-255 characters.", param)
    return value


def _int(value: Any, param: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Bad(f"{param} must be an integer in [{low}, {high}].", param)
    return value


def _injection(body: dict[str, Any]) -> money.Injection:
    drop = body.get("drop", [])
    if not isinstance(drop, list):
        raise _Bad("drop must be a list of references.", "drop")
    adjust = body.get("adjust", {})
    if not isinstance(adjust, dict):
        raise _Bad("adjust must map references to deltas.", "adjust")
    extra = body.get("extra", [])
    if not isinstance(extra, list):
        raise _Bad("extra must be a list of lines.", "extra")
    lines: list[dict[str, Any]] = []
    for i, e in enumerate(extra):
        if not isinstance(e, dict) or set(e) - {"reference", "type", "amount", "currency"}:
            raise _Bad("each extra line is {reference, type, amount, currency?}.", f"extra[{i}]")
        if e.get("type") not in LINE_TYPES:
            raise _Bad("type must be capture, refund, dispute or dispute_reversal.", f"extra[{i}][type]")
        currency = e.get("currency", "USD")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise _Bad("currency must be an ISO 4217 code.", f"extra[{i}][currency]")
        lines.append({"reference": _ref(e.get("reference"), f"extra[{i}][reference]"), "type": e["type"],
                      "amount": _int(e.get("amount"), f"extra[{i}][amount]", -MAX_AMOUNT, MAX_AMOUNT),
                      "currency": currency.upper()})
    return money.Injection(
        drop=frozenset(_ref(r, "drop") for r in drop),
        adjust={_ref(k, "adjust"): _int(v, f"adjust[{k}]", -MAX_AMOUNT, MAX_AMOUNT) for k, v in adjust.items()},
        extra=tuple(lines))


def install(app: FastAPI, pool: Pool) -> None:
    @app.post("/v1/disputes")
    async def open_dispute(request: Request) -> Response:
        try:
            body = await _body(request, {"reference", "amount", "reason"})
            reference = _ref(body.get("reference"), "reference")
            amount = None if body.get("amount") is None else _int(body["amount"], "amount", 1, MAX_AMOUNT)
            reason = body.get("reason", "general")
            if reason not in money.REASONS:
                raise _Bad("reason must be fraudulent, product_not_received, duplicate or general.", "reason")
            return _json(201, await money.open_dispute(pool, reference, amount, reason))
        except _Bad as exc:
            return _error(400, "parameter_invalid", exc.message, exc.param)
        except money.Refused as exc:
            return _error(exc.status, exc.code, exc.message)

    @app.get("/v1/disputes")
    async def list_disputes(reference: str | None = None) -> Response:
        if not reference:
            return _error(400, "parameter_missing", "reference is required.", "reference")
        return _json(200, {"object": "list", "data": await money.list_disputes(pool, reference), "has_more": False})

    async def respond(dispute_id: str, evidence: str | None) -> Response:
        try:
            return _json(200, await money.respond(pool, dispute_id, evidence=evidence))
        except money.Refused as exc:
            return _error(exc.status, exc.code, exc.message)

    @app.post("/v1/disputes/{dispute_id}/evidence")
    async def evidence(dispute_id: str, request: Request) -> Response:
        try:
            body = await _body(request, {"text"})
            text = body.get("text")
            if not isinstance(text, str) or not 1 <= len(text) <= 20_000:
                raise _Bad("text must be 1-20,000 characters.", "text")
        except _Bad as exc:
            return _error(400, "parameter_invalid", exc.message, exc.param)
        return await respond(dispute_id, text)

    @app.post("/v1/disputes/{dispute_id}/accept")
    async def accept(dispute_id: str) -> Response:
        return await respond(dispute_id, None)

    @app.post("/v1/settlements")
    async def settle(request: Request) -> Response:
        try:
            injection = _injection(await _body(request, {"drop", "adjust", "extra"}))
        except _Bad as exc:
            return _error(400, "parameter_invalid", exc.message, exc.param)
        return _json(201, {"object": "list", "data": await money.close_batches(pool, injection), "has_more": False})

    @app.get("/v1/settlements")
    async def list_settlements(since: str | None = None) -> Response:
        try:
            after = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        except ValueError:
            return _error(400, "parameter_invalid", "since must be an RFC 3339 time.", "since")
        return _json(200, {"object": "list", "data": await money.list_batches(pool, after), "has_more": False})

    @app.get("/v1/settlements/{settlement_id}")
    async def get_settlement(settlement_id: str) -> Response:
        batch = await money.get_batch(pool, settlement_id)
        if batch is None:
            return _error(404, "resource_missing", "No such settlement.")
        return _json(200, batch)
