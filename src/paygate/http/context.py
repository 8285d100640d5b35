"""The application context: what a request handler may reach, typed, in one object (`app.state.context`,
set by the application's lifespan, read only through `context()`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from paygate.domain.ratelimit import Limits
from paygate.http.clientaddr import Network
from paygate.services.gateway import Gateway
from paygate.services.merchants import KeyCache


@dataclass
class AppContext:
    gateway: Gateway
    keys: KeyCache
    limits: Limits
    trusted_proxies: tuple[Network, ...] = ()
    migration_versions: list[int] = field(default_factory=list)  # what /readyz expects the database to have


def context(request: Request) -> AppContext:
    ctx = getattr(request.app.state, "context", None)
    if not isinstance(ctx, AppContext):
        raise RuntimeError("the application context is not installed (is the lifespan running?)")
    return ctx


def gateway(request: Request) -> Gateway:
    return context(request).gateway
