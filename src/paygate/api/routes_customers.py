"""/v1/customers and /v1/payment_methods (API.md §16). Saving a card (POST /v1/payment_methods) and paying
with a saved one come with the acquirer seam; here: customers, and reading and detaching methods."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from paygate.api.deps import gateway, idempotent, secret_key
from paygate.api.listing import ListParams, list_params, page
from paygate.api.responses import json
from paygate.domain import customer_views
from paygate.errors import InvalidRequest
from paygate.http.customer_schemas import CreateCustomer, UpdateCustomer
from paygate.http.schemas import CreatePaymentMethod
from paygate.services import customers as service
from paygate.services import payment_methods as pm_service
from paygate.services.gateway import Principal

router = APIRouter(prefix="/v1", tags=["customers"])
Secret = Annotated[Principal, Depends(secret_key)]
Listing = Annotated[ListParams, Depends(list_params)]


async def _no_body(request: Request, what: str) -> None:
    if (await request.body()).strip() not in (b"", b"{}"):
        raise InvalidRequest("parameter_unknown", f"{what} takes no parameters.")


@router.post("/customers", status_code=201, summary="Create a customer")
async def create_customer(request: Request, body: CreateCustomer, who: Secret) -> Response:
    gw = gateway(request)
    fields = body.model_dump()
    return await idempotent(request, who, lambda key: service.create(gw, who, fields, key))


@router.get("/customers", summary="List customers, newest first (filter: email, exact and case-insensitive)")
async def list_customers(
    request: Request, who: Secret, params: Listing, email: Annotated[str | None, Query(max_length=254)] = None,
) -> Response:
    rows = await service.page(gateway(request), who, email=email, created_gte=params.created_gte,
                              created_lt=params.created_lt, starting_after=params.starting_after,
                              limit=params.limit)
    return json(page(rows, params.limit, customer_views.customer))


@router.get("/customers/{customer_id}", summary="Retrieve a customer")
async def get_customer(request: Request, customer_id: str, who: Secret) -> Response:
    return json(await service.retrieve(gateway(request), who, customer_id))


@router.patch("/customers/{customer_id}", summary="Update email, name, description or metadata")
async def update_customer(
    request: Request, customer_id: str, who: Secret, body: UpdateCustomer | None = None
) -> Response:
    body = body or UpdateCustomer()
    if "metadata" in body.model_fields_set and body.metadata is None:
        raise InvalidRequest("parameter_invalid", "metadata may not be null; send {} to clear it.", param="metadata")
    changes = body.model_dump(include=body.model_fields_set)
    gw = gateway(request)
    return await idempotent(request, who, lambda key: service.update(gw, who, customer_id, changes, key))


@router.delete("/customers/{customer_id}", summary="Delete a customer: its payment methods are detached and erased")
async def delete_customer(request: Request, customer_id: str, who: Secret) -> Response:
    await _no_body(request, "DELETE")
    gw = gateway(request)
    return await idempotent(request, who, lambda key: service.delete(gw, who, customer_id, key))


@router.get("/customers/{customer_id}/payment_methods", summary="List a customer's saved payment methods")
async def list_customer_methods(request: Request, customer_id: str, who: Secret, params: Listing) -> Response:
    rows = await service.payment_methods_of(gateway(request), who, customer_id,
                                            starting_after=params.starting_after, limit=params.limit)
    return json(page(rows, params.limit, customer_views.payment_method))


@router.post("/payment_methods", status_code=201, summary="Save a card for a customer (verified at an acquirer)")
async def create_payment_method(request: Request, body: CreatePaymentMethod, who: Secret) -> Response:
    gw = gateway(request)
    card = body.card.model_dump(exclude_none=True)
    return await idempotent(request, who, lambda key: pm_service.create(gw, who, body.customer, card, key))


@router.get("/payment_methods/{pm_id}", summary="Retrieve a saved payment method")
async def get_payment_method(request: Request, pm_id: str, who: Secret) -> Response:
    return json(await pm_service.retrieve(gateway(request), who, pm_id))


@router.post("/payment_methods/{pm_id}/detach",
             summary="Detach a payment method from its customer; its card number is erased")
async def detach_payment_method(request: Request, pm_id: str, who: Secret) -> Response:
    await _no_body(request, "detach")
    gw = gateway(request)
    return await idempotent(request, who, lambda key: pm_service.detach(gw, who, pm_id, key))
