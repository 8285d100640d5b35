"""The one way a surface runs a write under an idempotency key (API.md §4): the API names the key in the
`Idempotency-Key` header and the request by its JSON body; the dashboard's forms and the hosted checkout
adapt their own names to the same call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from paygate.http.body import json_body
from paygate.http.context import gateway
from paygate.http.responses import raw
from paygate.services import idempotency
from paygate.services.gateway import Gateway, Outcome, Principal
from paygate.services.idempotency import KeyHandle, Namespace

Run = Callable[[KeyHandle], Awaitable[Outcome]]
Restore = Callable[[bytes], bytes]


async def execute(
    gw: Gateway, who: Principal, *, namespace: Namespace, key: str | None, method: str, path: str, body: Any,
    run: Run, restore: Restore | None = None,
) -> tuple[Outcome, bool]:
    """(the outcome, whether it is a replay); the settings it needs come from the gateway."""
    return await idempotency.execute(
        gw.pool, merchant_id=who.merchant_id, namespace=namespace, key=key, method=method, path=path, body=body,
        lock_s=gw.settings.idempotency_lock_s, fingerprint_key=gw.settings.fingerprint_key, run=run,
        restore=restore,
    )


def namespace_of(who: Principal) -> Namespace:
    return "secret" if who.kind == "secret" else "publishable"


async def idempotent(
    request: Request, who: Principal, run: Run, *, namespace: Namespace | None = None,
    restore: Restore | None = None,
) -> Response:
    """A JSON write: replay, refuse, or run and record. The key's namespace is the caller's kind of key
    unless the surface names its own (the checkout does)."""
    outcome, replayed = await execute(
        gateway(request), who, namespace=namespace or namespace_of(who), key=request.headers.get("idempotency-key"),
        method=request.method, path=request.url.path, body=await json_body(request), run=run, restore=restore,
    )
    return raw(outcome.body, outcome.status, {"Idempotent-Replayed": "true"} if replayed else None)
