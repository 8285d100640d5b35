"""/v1/routing and /v1/acquirers (API.md §14): a merchant's routing rules, and the acquirers' health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from paygate.api.deps import gateway, idempotent, json_body, secret_key
from paygate.api.responses import json
from paygate.http.routing_schemas import put_routing_openapi
from paygate.services import acquirer_health
from paygate.services import routing as service
from paygate.services.gateway import Principal

router = APIRouter(prefix="/v1", tags=["routing"])
Secret = Annotated[Principal, Depends(secret_key)]


@router.get("/routing", summary="The merchant's routing: rules, then the default list of acquirers")
async def get_routing(request: Request, who: Secret) -> Response:
    return json(await service.retrieve(gateway(request), who))


@router.put("/routing", summary="Replace the merchant's routing (400 changes nothing)",
            openapi_extra=put_routing_openapi())
async def put_routing(request: Request, who: Secret) -> Response:
    gw = gateway(request)
    routing = service.validate(gw, await json_body(request))  # before the key: a 400 is not stored
    return await idempotent(request, who, lambda key: service.replace(gw, who, routing, key))


@router.get("/acquirers", summary="The configured acquirers and their health")
async def list_acquirers(request: Request, who: Secret) -> Response:
    return json(await acquirer_health.list_acquirers(gateway(request)))
