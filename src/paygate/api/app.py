"""The paygate API application: `create_app()` is what uvicorn serves (also with --workers N)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI

from paygate.api import (
    errors,
    openapi,
    routes_bank_events,
    routes_events,
    routes_ops,
    routes_orders,
    routes_payments,
    routes_webhooks,
)
from paygate.api.middleware import Edge
from paygate.bank.client import BankClient
from paygate.config import Settings, get_settings
from paygate.domain.ratelimit import TokenBuckets
from paygate.http.parameters import refuse_control_characters
from paygate.logs import configure_logging
from paygate.services.gateway import Gateway
from paygate.services.merchants import KeyCache
from paygate.store import migrate
from paygate.store.db import make_pool
from paygate.web import routes as web_routes


def database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise SystemExit("PAYGATE_DATABASE_URL is not set (paygate serve sets it for you).")
    return settings.database_url


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    conninfo = database_url(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = make_pool(conninfo, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        await pool.open(wait=False)
        bank = BankClient(settings.bank_url, timeout_s=settings.bank_timeout_s, attempts=settings.bank_attempts)
        app.state.gateway = Gateway(pool=pool, bank=bank, settings=settings)
        app.state.keys = KeyCache()
        rate = settings.rate_limit_per_s
        app.state.limiter = TokenBuckets(rate, 2 * rate) if rate > 0 else None
        if settings.secret_key == "paygate-dev-secret-key" or settings.fingerprint_key == "paygate-dev-fingerprint-key":
            structlog.get_logger("paygate.api").warning(
                "development_keys_in_use", hint="set PAYGATE_SECRET_KEY and PAYGATE_FINGERPRINT_KEY in production")
        app.state.migration_versions = [int(name[:4]) for name in migrate.all_names("paygate.store.migrations")]
        try:
            yield
        finally:
            await bank.aclose()
            await pool.close()

    app = FastAPI(
        title="paygate",
        version="0.1.0",
        summary="A self-hostable payment gateway: cards and UPI, a double-entry ledger, signed webhooks.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        dependencies=[Depends(refuse_control_characters)],  # every route's path and query (API.md §19)
    )
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    errors.install(app)
    app.include_router(routes_ops.router)
    app.include_router(routes_payments.router)
    app.include_router(routes_orders.router)
    app.include_router(routes_events.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_bank_events.router)
    app.include_router(web_routes.router)
    app.add_middleware(Edge)
    return app
