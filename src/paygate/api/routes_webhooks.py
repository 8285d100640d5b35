"""/v1/webhook_endpoints and /v1/webhook_deliveries (API.md §8)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError
from starlette.responses import Response

from paygate.api.deps import gateway, idempotent, secret_key
from paygate.api.listing import ListParams, list_params, page
from paygate.api.responses import json
from paygate.domain import destinations, views
from paygate.domain.webhooks import DELIVERY_STATUSES, EVENT_TYPES, TEST_EVENT
from paygate.errors import InvalidRequest
from paygate.http.schemas import FreeStr, PlainStr
from paygate.services import webhook_endpoints as service
from paygate.services.gateway import Principal
from paygate.store import webhooks as store
from paygate.webhooks import signing

router = APIRouter(prefix="/v1", tags=["webhooks"])
Secret = Annotated[Principal, Depends(secret_key)]
Listing = Annotated[ListParams, Depends(list_params)]


def _url(v: str) -> str:
    """The checks that need no lookup; where the host resolves to is judged in the handler
    (`service.validate_url`, the validator the dashboard uses too)."""
    problem = destinations.syntax_problem(v)
    if problem is not None:
        raise PydanticCustomError("parameter_invalid", problem)
    return v


def _events(v: list[str]) -> list[str]:
    if not v:
        raise PydanticCustomError("parameter_invalid", 'enabled_events needs ["*"] or at least one event type.')
    unique = list(dict.fromkeys(v))
    if "*" in unique and len(unique) > 1:
        raise PydanticCustomError("parameter_invalid", '"*" already means every event type; send it alone.')
    if TEST_EVENT in unique:
        raise PydanticCustomError("parameter_invalid", f"{TEST_EVENT} is sent only on request (POST "
                                  "/v1/webhook_endpoints/{id}/test); an endpoint cannot subscribe to it.")
    unknown = [t for t in unique if t != "*" and t not in EVENT_TYPES]
    if unknown:
        raise PydanticCustomError("parameter_invalid", f"Unknown event type: {unknown[0]}.")
    return unique


Url = Annotated[PlainStr, Field(max_length=2048), AfterValidator(_url)]
EnabledEvents = Annotated[list[PlainStr], Field(max_length=50), AfterValidator(_events)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateEndpoint(Strict):
    url: Url
    enabled_events: EnabledEvents
    description: Annotated[FreeStr, Field(max_length=1000)] | None = None
    legacy_signature: StrictBool = False  # also send X-Webhook-Signature (API.md §11 v2)


class UpdateEndpoint(Strict):
    url: Url | None = None
    enabled_events: EnabledEvents | None = None
    disabled: StrictBool | None = None
    legacy_signature: StrictBool | None = None


async def _no_body(request: Request, what: str) -> None:
    if (await request.body()).strip() not in (b"", b"{}"):
        raise InvalidRequest("parameter_unknown", f"{what} takes no parameters.")


@router.post("/webhook_endpoints", status_code=201, summary="Create a webhook endpoint (the secret is shown once)")
async def create_endpoint(request: Request, body: CreateEndpoint, who: Secret) -> Response:
    gw = gateway(request)
    await service.validate_url(gw, body.url)
    return await idempotent(request, who, lambda key: service.create_endpoint(
        gw, who, url=body.url, enabled_events=body.enabled_events, description=body.description, key=key,
        legacy_signature=body.legacy_signature),
        restore=lambda stored: signing.unseal(stored, gw.settings.secret_key))  # the secret is stored sealed


@router.get("/webhook_endpoints", summary="List webhook endpoints, newest first")
async def list_endpoints(request: Request, who: Secret, params: Listing) -> Response:
    async with gateway(request).pool.connection() as conn:
        rows = await store.page_endpoints(conn, who.merchant_id, created_gte=params.created_gte,
                                          created_lt=params.created_lt, starting_after=params.starting_after,
                                          limit=params.limit)
    return json(page(rows, params.limit, views.webhook_endpoint))


@router.get("/webhook_endpoints/{endpoint_id}", summary="Retrieve a webhook endpoint")
async def get_endpoint(request: Request, endpoint_id: str, who: Secret) -> Response:
    return json(await service.retrieve_endpoint(gateway(request), who, endpoint_id))


@router.patch("/webhook_endpoints/{endpoint_id}",
              summary="Update url, enabled_events, disabled or legacy_signature")
async def update_endpoint(
    request: Request, endpoint_id: str, who: Secret, body: UpdateEndpoint | None = None
) -> Response:
    body = body or UpdateEndpoint()
    for name in body.model_fields_set:
        if getattr(body, name) is None:
            raise InvalidRequest("parameter_invalid", f"{name} may not be null.", param=name)
    changes = body.model_dump(include=body.model_fields_set)
    gw = gateway(request)
    if body.url is not None:
        await service.validate_url(gw, body.url)
    return await idempotent(request, who, lambda key: service.update_endpoint(gw, who, endpoint_id, changes, key))


@router.delete("/webhook_endpoints/{endpoint_id}", summary="Delete a webhook endpoint")
async def delete_endpoint(request: Request, endpoint_id: str, who: Secret) -> Response:
    await _no_body(request, "DELETE")
    gw = gateway(request)
    return await idempotent(request, who, lambda key: service.delete_endpoint(gw, who, endpoint_id, key))


@router.post("/webhook_endpoints/{endpoint_id}/rotate_secret",
             summary="Replace the signing secret; the previous one keeps signing for 24 h")
async def rotate_secret(request: Request, endpoint_id: str, who: Secret) -> Response:
    await _no_body(request, "rotate_secret")
    gw = gateway(request)
    return await idempotent(request, who, lambda key: service.rotate_secret(gw, who, endpoint_id, key),
                            restore=lambda stored: signing.unseal(stored, gw.settings.secret_key))


@router.post("/webhook_endpoints/{endpoint_id}/test", status_code=202,
             summary="Send a signed webhook.test event to this endpoint alone; answers with its delivery")
async def send_test(request: Request, endpoint_id: str, who: Secret) -> Response:
    await _no_body(request, "test")
    gw = gateway(request)
    return await idempotent(request, who, lambda key: service.send_test(gw, who, endpoint_id, key))


@router.get("/webhook_deliveries", summary="List webhook deliveries, newest first")
async def list_deliveries(
    request: Request, who: Secret, params: Listing, endpoint_id: str | None = None, event_id: str | None = None,
    status: str | None = None,
) -> Response:
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidRequest("parameter_invalid", f"Unknown status: {status}.", param="status")
    async with gateway(request).pool.connection() as conn:
        rows = await store.page_deliveries(
            conn, who.merchant_id, endpoint_id=endpoint_id, event_id=event_id, status=status,
            created_gte=params.created_gte, created_lt=params.created_lt, starting_after=params.starting_after,
            limit=params.limit)
    return json(page(rows, params.limit, views.webhook_delivery))


@router.get("/webhook_deliveries/{delivery_id}", summary="Retrieve a webhook delivery and its attempts")
async def get_delivery(request: Request, delivery_id: str, who: Secret) -> Response:
    return json(await service.retrieve_delivery(gateway(request), who, delivery_id))


@router.post("/webhook_deliveries/{delivery_id}/retry",
             summary="Deliver again now: one extra attempt, whose outcome becomes the delivery's status")
async def retry_delivery(request: Request, delivery_id: str, who: Secret) -> Response:
    await _no_body(request, "retry")
    gw = gateway(request)
    return await idempotent(request, who, lambda key: service.retry_delivery(gw, who, delivery_id, key))
