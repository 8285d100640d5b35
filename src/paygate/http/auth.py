"""Who is calling, and whether they may call now: API-key authentication and the rate limits around it
(API.md §2, §19; the rules are in domain/ratelimit.py).

A request with a key is checked in this order, each step cheaper than the next:
1. the address's failed-authentication bucket, before the key is looked up (no query once it is empty);
2. the key itself (a cached lookup; a key that matches nothing spends one of those failed attempts);
3. for a publishable key, the address's public bucket;
4. the merchant's bucket for that kind of key.
"""

from __future__ import annotations

import base64
import binascii
import time

from starlette.requests import Request

from paygate.domain.ratelimit import retry_after
from paygate.errors import AuthenticationError, PermissionDenied, RateLimited
from paygate.http.clientaddr import client_address
from paygate.http.context import context
from paygate.services.gateway import Principal


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


def _limited(wait: float) -> RateLimited:
    return RateLimited("rate_limited", "Too many requests; slow down and retry.", retry_after=retry_after(wait))


def address(request: Request) -> str:
    """The client address the per-address limits count against (see http/clientaddr.py)."""
    return client_address(request, context(request).trusted_proxies)


async def lookup_key(request: Request, key: str, addr: str | None = None) -> Principal | None:
    """The key's merchant and kind, or None; 429 before the lookup once the address has failed too often.
    `addr`: the request's `address`, when the caller has it already."""
    ctx = context(request)
    addr = address(request) if addr is None else addr
    wait = ctx.limits.authentication_blocked(addr, time.monotonic())
    if wait > 0:
        raise _limited(wait)
    who = await ctx.keys.lookup(ctx.gateway.pool, key)
    if who is None:
        ctx.limits.authentication_failed(addr, time.monotonic())
    return who


async def principal(request: Request) -> Principal:
    key = _bearer(request)
    if key is None:
        raise AuthenticationError("missing_api_key", "Provide your API key: Authorization: Bearer sk_test_…")
    addr = address(request)  # once per request: parsing the peer's address is most of what the checks cost
    who = await lookup_key(request, key, addr)
    if who is None:
        raise AuthenticationError("invalid_api_key", "The API key provided is not valid.")
    ctx = context(request)
    if who.kind != "secret":
        wait = ctx.limits.public_address(addr, time.monotonic())
        if wait > 0:
            raise _limited(wait)
    wait = ctx.limits.principal(who.kind, who.merchant_id, time.monotonic())
    if wait > 0:
        raise _limited(wait)
    request.state.merchant_id = who.merchant_id
    return who


async def secret_key(request: Request) -> Principal:
    who = await principal(request)
    if who.kind != "secret":
        raise PermissionDenied("secret_key_required", "This request needs a secret key (sk_test_…).")
    return who


def public_surface(request: Request) -> None:
    """A request to a keyless public page (the hosted checkout): 429 once its address is over the limit."""
    wait = context(request).limits.public_address(address(request), time.monotonic())
    if wait > 0:
        raise _limited(wait)
