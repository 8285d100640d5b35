"""POST /v1/bank/events: the simulated (or a real) bank's signed callbacks. No API key: the signature is
the authentication, checked over the raw body before anything is parsed or recorded."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from paygate.api.deps import gateway
from paygate.api.responses import json
from paygate.services import bank_events

router = APIRouter(prefix="/v1", tags=["bank"])


@router.post(
    "/bank/events",
    summary="Receive a signed bank callback (Standard Webhooks)",
    description="401 for a bad or missing signature (nothing recorded); 200 for an event applied, a duplicate "
    "id, an event that would move a payment backwards, an unknown reference, or an event for a payment at another "
    "acquirer (all recorded); 503 when the database cannot commit, so that the bank retries. `acquirer` names "
    "the sender (paygate hands each acquirer this URL with its name); it may be omitted when only one acquirer "
    "is configured.",
)
async def receive_bank_event(
    request: Request,
    acquirer: Annotated[str | None, Query(max_length=31, description="The sending acquirer's configured name "
                                          "(in the URL paygate hands it); optional with a single acquirer.")] = None,
) -> Response:
    gw = gateway(request)
    body = await request.body()
    event = bank_events.accept(gw, acquirer, request.headers, body)
    receipt = await bank_events.receive(gw, event)
    return json(receipt.view())
