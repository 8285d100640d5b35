"""Operational endpoints: liveness, readiness, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from paygate.api import metrics as api_metrics
from paygate.api.deps import gateway
from paygate.api.responses import json
from paygate.http.context import context
from paygate.services import reconciliation_metrics

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> Response:
    return json({"status": "ok"})


@router.get("/readyz", summary="The database is reachable and migrated")
async def readyz(request: Request) -> Response:
    gw, versions = gateway(request), context(request).migration_versions
    try:
        async with gw.pool.connection(timeout=2.0) as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM schema_migrations WHERE version = ANY(%s)",
                (versions,),
            )
            row = await cur.fetchone()
    except Exception:
        return json({"status": "unavailable", "database": "unreachable"}, 503, {"Retry-After": "1"})
    if row is None or row["n"] != len(versions):
        return json({"status": "unavailable", "database": "migrations_pending"}, 503, {"Retry-After": "5"})
    return json({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    await reconciliation_metrics.refresh(gateway(request))  # a database figure, the same in every process
    body, content_type = api_metrics.render()  # all API processes' metrics (api/metrics.py)
    return Response(body, media_type=content_type)
