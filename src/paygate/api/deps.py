"""Request-scoped helpers: the gateway, who is calling, and the idempotent execution of a write."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from paygate.api.responses import raw
from paygate.errors import AuthenticationError, InvalidRequest, PermissionDenied, RateLimited
from paygate.services import idempotency
from paygate.services.gateway import Gateway, Outcome, Principal
from paygate.services.idempotency import KeyHandle


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


async def principal(request: Request) -> Principal:
    key = _bearer(request)
    if key is None:
        raise AuthenticationError("missing_api_key", "Provide your API key: Authorization: Bearer sk_test_…")
    gw = gateway(request)
    who = await request.app.state.keys.lookup(gw.pool, key)
    if who is None:
        raise AuthenticationError("invalid_api_key", "The API key provided is not valid.")
    limiter = request.app.state.limiter
    if limiter is not None:
        wait = limiter.take(who.merchant_id, time.monotonic())
        if wait > 0:
            raise RateLimited("rate_limited", "Too many requests; slow down and retry.",
                              retry_after=limiter.retry_after(wait))
    request.state.merchant_id = who.merchant_id
    return who  # type: ignore[no-any-return]


async def secret_key(request: Request) -> Principal:
    who = await principal(request)
    if who.kind != "secret":
        raise PermissionDenied("secret_key_required", "This request needs a secret key (sk_test_…).")
    return who


async def json_body(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("parameter_invalid", "The request body is not valid JSON.") from None


async def idempotent(
    request: Request, who: Principal, run: Callable[[KeyHandle], Awaitable[Outcome]]
) -> Response:
    """Execute a write under its Idempotency-Key (if any): replay, refuse, or run and record."""
    gw = gateway(request)
    outcome, replayed = await idempotency.execute(
        gw.pool, merchant_id=who.merchant_id, key=request.headers.get("idempotency-key"), method=request.method,
        path=request.url.path, body=await json_body(request), lock_s=gw.settings.idempotency_lock_s, run=run,
    )
    return raw(outcome.body, outcome.status, {"Idempotent-Replayed": "true"} if replayed else None)
