"""POST /v1/bank/events: the simulated (or a real) bank's signed callbacks. No API key: the signature is
the authentication, checked over the raw body before anything is parsed or recorded."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from paygate.api.deps import gateway
from paygate.api.responses import json
from paygate.services import bank_events

router = APIRouter(prefix="/v1", tags=["bank"])


@router.post(
    "/bank/events",
    summary="Receive a signed bank callback (Standard Webhooks)",
    description="401 for a bad or missing signature (nothing recorded); 200 for an event applied, a duplicate "
    "id, an event that would move a payment backwards, or an unknown reference (all recorded); 503 when the "
    "database cannot commit, so that the bank retries.",
)
async def receive_bank_event(request: Request) -> Response:
    gw = gateway(request)
    body = await request.body()
    bank_events.authenticate(gw.settings.bank_webhook_secret, request.headers, body)
    event = bank_events.parse(body)
    receipt = await bank_events.receive(gw, event)
    return json(receipt.view())
