"""/v1/orders. A publishable key may only read an order's public view (for the hosted checkout); every
other use of it here is 403 (the `secret_key` dependency)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from paygate.api.deps import gateway, idempotent, principal, secret_key
from paygate.api.listing import ListParams, list_params
from paygate.api.responses import json
from paygate.http.schemas import CreateOrder, SendLink
from paygate.services import emails as email_service
from paygate.services import orders as order_service
from paygate.services.gateway import Principal

router = APIRouter(prefix="/v1", tags=["orders"])
Secret = Annotated[Principal, Depends(secret_key)]
AnyKey = Annotated[Principal, Depends(principal)]
Listing = Annotated[ListParams, Depends(list_params)]


@router.post("/orders", status_code=201, summary="Create an order (and its hosted checkout page)")
async def create_order(request: Request, body: CreateOrder, who: Secret) -> Response:
    req = order_service.NewOrder(amount=body.amount, currency=body.currency, receipt=body.receipt, notes=body.notes,
                                  customer=body.customer, return_url=body.return_url)
    gw = gateway(request)
    return await idempotent(request, who, lambda key: order_service.create(gw, who, req, key))


@router.get("/orders/{order_id}", summary="Retrieve an order (publishable key: its public view)")
async def get_order(request: Request, order_id: str, who: AnyKey) -> Response:
    return json(await order_service.retrieve(gateway(request), who, order_id))


@router.get("/orders", summary="List orders, newest first")
async def list_orders(request: Request, who: Secret, params: Listing) -> Response:
    return json(await order_service.list_orders(
        gateway(request), who, limit=params.limit, starting_after=params.starting_after,
        created_gte=params.created_gte, created_lt=params.created_lt))


@router.get("/orders/{order_id}/payments", summary="List an order's payments, newest first")
async def list_order_payments(request: Request, order_id: str, who: Secret, params: Listing) -> Response:
    return json(await order_service.list_payments(
        gateway(request), who, order_id, limit=params.limit, starting_after=params.starting_after,
        created_gte=params.created_gte, created_lt=params.created_lt))


@router.post("/orders/{order_id}/send_link", status_code=202, summary="Email the order's checkout link")
async def send_link(request: Request, order_id: str, body: SendLink, who: Secret) -> Response:
    gw = gateway(request)
    return await idempotent(request, who, lambda key: email_service.send_link(gw, who, order_id, body.email, key))
