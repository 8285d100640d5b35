"""/v1/disputes and /v1/settlements (API.md §17, §18)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from paygate.api.deps import gateway, idempotent, json_body, secret_key
from paygate.api.listing import ListParams, list_params, page
from paygate.api.responses import json
from paygate.domain import disputes as dispute_rules
from paygate.domain import views
from paygate.errors import InvalidRequest
from paygate.services import disputes as dispute_service
from paygate.services import settlements as settlement_service
from paygate.services.gateway import Principal
from paygate.store import disputes

router = APIRouter(prefix="/v1", tags=["disputes and settlement"])
Secret = Annotated[Principal, Depends(secret_key)]
Listing = Annotated[ListParams, Depends(list_params)]


@router.get("/disputes", summary="List disputes, newest first")
async def list_disputes(request: Request, who: Secret, params: Listing, payment_id: str | None = None,
                        status: str | None = None) -> Response:
    if status is not None and status not in dispute_rules.STATUSES:
        raise InvalidRequest("parameter_invalid", f"Unknown status: {status}.", param="status")
    async with gateway(request).pool.connection() as conn:
        rows = await disputes.page(conn, who.merchant_id, payment_id=payment_id, status=status,
                                   created_gte=params.created_gte, created_lt=params.created_lt,
                                   starting_after=params.starting_after, limit=params.limit)
    return json(page(rows, params.limit, dispute_rules.view))


@router.get("/disputes/{dispute_id}", summary="Retrieve a dispute")
async def get_dispute(request: Request, dispute_id: str, who: Secret) -> Response:
    return json(await dispute_service.retrieve(gateway(request), who, dispute_id))


@router.post("/disputes/{dispute_id}/evidence", summary="Submit evidence: the dispute goes under review")
async def submit_evidence(request: Request, dispute_id: str, who: Secret) -> Response:
    gw, text = gateway(request), dispute_service.evidence_of(await json_body(request))  # a 400 is not stored
    return await idempotent(request, who, lambda key: dispute_service.answer(gw, who, dispute_id, text, key))


@router.post("/disputes/{dispute_id}/accept", summary="Concede the dispute: it is lost")
async def accept_dispute(request: Request, dispute_id: str, who: Secret) -> Response:
    body = await json_body(request)
    if body:
        raise InvalidRequest("parameter_unknown", "accept takes no parameters.")
    gw = gateway(request)
    return await idempotent(request, who, lambda key: dispute_service.answer(gw, who, dispute_id, None, key))


@router.get("/settlements", summary="List the settlement batches with the merchant's lines, newest first")
async def list_settlements(request: Request, who: Secret, params: Listing) -> Response:
    data, has_more = await settlement_service.page(gateway(request), who, params.starting_after, params.limit)
    return json(views.listing(data, has_more))


@router.get("/settlements/{settlement_id}", summary="Retrieve a settlement: the merchant's lines only")
async def get_settlement(request: Request, settlement_id: str, who: Secret) -> Response:
    return json(await settlement_service.retrieve(gateway(request), who, settlement_id))
