"""/v1/payments and /v1/refunds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from paygate.api.deps import gateway, idempotent, json_body, principal, secret_key
from paygate.api.listing import ListParams, list_params, page
from paygate.api.responses import json
from paygate.domain import views
from paygate.domain.payments import Status
from paygate.errors import InvalidRequest, PermissionDenied
from paygate.http.schemas import Capture, CreatePayment, CreateRefund
from paygate.services import payments as payment_service
from paygate.services import refunds as refund_service
from paygate.services.gateway import Principal
from paygate.store import payments, refunds

router = APIRouter(prefix="/v1", tags=["payments"])
Secret = Annotated[Principal, Depends(secret_key)]
AnyKey = Annotated[Principal, Depends(principal)]
Listing = Annotated[ListParams, Depends(list_params)]
# a saved card of the order's customer, or saving one for it (§16): the checkout's; never off_session.
# Never return_url (§15): paygate's return endpoint 303s to it, so a public key that could set it would mint a
# paygate URL redirecting anywhere; the hosted checkout's /checkout/{id}/pay builds its own on the server.
_PUBLISHABLE_FIELDS = frozenset({"order_id", "payment_method", "save_payment_method"})


@router.post("/payments", status_code=201, summary="Create and authorize a payment")
async def create_payment(request: Request, body: CreatePayment, who: AnyKey) -> Response:
    if who.kind == "publishable" and (body.order_id is None or body.model_fields_set - _PUBLISHABLE_FIELDS):
        raise PermissionDenied("publishable_key_restricted",
                               "A publishable key may only pay an existing order: send order_id and payment_method.")
    req = payment_service.NewPayment(
        payment_method=body.payment_method if isinstance(body.payment_method, str) else body.payment_method.as_dict(),
        customer=body.customer, save_payment_method=body.save_payment_method, off_session=body.off_session,
        amount=body.amount, currency=body.currency,
        capture_method=body.capture_method, order_id=body.order_id, customer_id=body.customer_id,
        description=body.description, metadata=body.metadata, receipt_email=body.receipt_email,
        return_url=body.return_url,
    )
    gw = gateway(request)
    return await idempotent(request, who, lambda key: payment_service.create(gw, who, req, key))


@router.get("/payments/{payment_id}", summary="Retrieve a payment")
async def get_payment(request: Request, payment_id: str, who: Secret) -> Response:
    return json(await payment_service.retrieve(gateway(request), who, payment_id))


@router.get("/payments", summary="List payments, newest first")
async def list_payments(
    request: Request, who: Secret, params: Listing, status: str | None = None, order_id: str | None = None,
    customer_id: str | None = None, customer: str | None = None,
) -> Response:
    if status is not None and status not in Status.__members__.values():
        raise InvalidRequest("parameter_invalid", f"Unknown status: {status}.", param="status")
    async with gateway(request).pool.connection() as conn:
        rows = await payments.page(
            conn, who.merchant_id, status=status, order_id=order_id, customer_id=customer_id,
            created_gte=params.created_gte, created_lt=params.created_lt, starting_after=params.starting_after,
            limit=params.limit, customer=customer,
        )
    return json(page(rows, params.limit, views.payment))


@router.post("/payments/{payment_id}/capture", summary="Capture an authorized payment (fully or partially)")
async def capture_payment(request: Request, payment_id: str, who: Secret, body: Capture | None = None) -> Response:
    gw = gateway(request)
    amount = body.amount if body else None
    return await idempotent(request, who, lambda key: payment_service.capture(gw, who, payment_id, amount, key))


@router.post("/payments/{payment_id}/void", summary="Release an authorization's hold")
async def void_payment(request: Request, payment_id: str, who: Secret) -> Response:
    body = await json_body(request)
    if body:
        param = next(iter(body)) if isinstance(body, dict) else None
        raise InvalidRequest("parameter_unknown", "void takes no parameters.", param=param)
    gw = gateway(request)
    return await idempotent(request, who, lambda key: payment_service.void(gw, who, payment_id, key))


@router.post("/refunds", status_code=201, summary="Refund a captured payment (fully or partially)")
async def create_refund(request: Request, body: CreateRefund, who: Secret) -> Response:
    gw = gateway(request)
    return await idempotent(request, who, lambda key: refund_service.create(
        gw, who, payment_id=body.payment_id, amount=body.amount, reason=body.reason, metadata=body.metadata, key=key))


@router.get("/refunds/{refund_id}", summary="Retrieve a refund")
async def get_refund(request: Request, refund_id: str, who: Secret) -> Response:
    return json(await refund_service.retrieve(gateway(request), who, refund_id))


@router.get("/refunds", summary="List refunds, newest first")
async def list_refunds(request: Request, who: Secret, params: Listing, payment_id: str | None = None) -> Response:
    async with gateway(request).pool.connection() as conn:
        rows = await refunds.page(conn, who.merchant_id, payment_id=payment_id, created_gte=params.created_gte,
                                  created_lt=params.created_lt, starting_after=params.starting_after,
                                  limit=params.limit)
    return json(page(rows, params.limit, views.refund))
