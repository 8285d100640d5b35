"""The paygate API application: `create_app()` is what uvicorn serves (also with --workers N)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI

from paygate import heap, tracing
from paygate.acquirers.base import Acquirer
from paygate.api import (
    docs,
    errors,
    metrics,
    openapi,
    routes_bank_events,
    routes_customers,
    routes_events,
    routes_money,
    routes_ops,
    routes_orders,
    routes_payments,
    routes_routing,
    routes_webhooks,
)
from paygate.api.middleware import Edge
from paygate.bootstrap import build_gateway
from paygate.config import GATEWAY_SECRETS, Settings, get_settings, secret_problems
from paygate.domain.ratelimit import Limits
from paygate.http.clientaddr import parse_trusted
from paygate.http.context import AppContext
from paygate.http.parameters import refuse_control_characters
from paygate.http.routing_schemas import describe_acquirers
from paygate.logs import configure_logging
from paygate.services.merchants import KeyCache
from paygate.store import migrate
from paygate.store.db import make_pool
from paygate.web import routes as web_routes


def database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise SystemExit("PAYGATE_DATABASE_URL is not set (paygate serve sets it for you).")
    return settings.database_url


def create_app(settings: Settings | None = None, acquirers: Mapping[str, Acquirer] | None = None) -> FastAPI:
    """The API. `acquirers` replaces the connectors built from the settings (tests: bootstrap.build_gateway)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    tracing.setup("paygate-api")  # before the pool connects; nothing unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    conninfo = database_url(settings)
    trusted_proxies = parse_trusted(settings.trusted_proxies)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = make_pool(conninfo, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
                         statement_timeout_ms=settings.db_statement_timeout_ms,
                         lock_timeout_ms=settings.db_lock_timeout_ms)
        await pool.open(wait=False)
        gw = build_gateway(settings, pool, acquirers)
        keys = KeyCache()
        keys.start(conninfo)  # LISTENs for rolled keys (services/merchants.py)
        app.state.context = AppContext(
            gateway=gw, keys=keys,
            limits=Limits(settings.rate_limit_per_s, settings.public_rate_limit_per_min),
            trusted_proxies=trusted_proxies,
            migration_versions=[int(name[:4]) for name in migrate.all_names("paygate.store.migrations")],
        )
        if weak := secret_problems(settings, GATEWAY_SECRETS):  # production refused to start on these (cli.py)
            structlog.get_logger("paygate.api").warning(
                "development_keys_in_use", problems=weak, hint="PAYGATE_ENV=production refuses to start with these")
        heap.freeze_once()  # the app as built lives as long as the process (paygate/heap.py)
        try:
            yield
        finally:
            await keys.aclose()
            await gw.aclose()
            await pool.close()
            metrics.process_exiting()

    app = FastAPI(
        title="paygate",
        version="0.1.0",
        summary="A self-hostable payment gateway: cards and UPI, a double-entry ledger, signed webhooks.",
        lifespan=lifespan,
        docs_url=None,  # api/docs.py: Swagger UI from the installed wheel, not a CDN
        openapi_url="/openapi.json",
        redoc_url=None,
        dependencies=[Depends(refuse_control_characters)],  # every route's path and query (API.md §19)
    )
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    errors.install(app)
    app.include_router(routes_ops.router)
    app.include_router(docs.router)
    app.include_router(routes_payments.router)
    app.include_router(routes_orders.router)
    app.include_router(routes_events.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_routing.router)
    app.include_router(routes_customers.router)
    app.include_router(routes_money.router)  # disputes and settlements (§17, §18)
    describe_acquirers(app, list(settings.acquirer_urls))  # PUT /v1/routing's schema names them
    app.include_router(routes_bank_events.router)
    app.include_router(web_routes.router)
    # Bodies that are not JSON: the dashboard's forms, and the bank's callbacks (verified over raw bytes).
    app.add_middleware(Edge, form_prefixes=("/dashboard",), raw_body_paths=("/v1/bank/events",))
    tracing.instrument(app)  # outermost: a request's server span covers everything (when tracing is on)
    return app
