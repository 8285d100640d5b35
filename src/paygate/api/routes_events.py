"""/v1/events, /v1/balance, /v1/ledger_entries and /v1/queue: what happened, what it moved, what waits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from paygate.api.deps import gateway, secret_key
from paygate.api.listing import ListParams, list_params, page
from paygate.api.responses import json
from paygate.domain import views
from paygate.domain.retry import parse_schedule
from paygate.domain.webhooks import ALL_EVENT_TYPES
from paygate.errors import InvalidRequest, NotFound
from paygate.services.gateway import Principal, utcnow
from paygate.store import events, ledger, queue, settlements

router = APIRouter(prefix="/v1", tags=["events"])
Secret = Annotated[Principal, Depends(secret_key)]
Listing = Annotated[ListParams, Depends(list_params)]


@router.get("/events", summary="List events, newest first (kept 30 days)")
async def list_events(request: Request, who: Secret, params: Listing, type: str | None = None) -> Response:
    if type is not None and type not in ALL_EVENT_TYPES:
        raise InvalidRequest("parameter_invalid", f"Unknown event type: {type}.", param="type")
    async with gateway(request).pool.connection() as conn:
        rows = await events.page(conn, who.merchant_id, type=type, created_gte=params.created_gte,
                                 created_lt=params.created_lt, starting_after=params.starting_after,
                                 limit=params.limit)
    return json(page(rows, params.limit, views.event))


@router.get("/events/{event_id}", summary="Retrieve an event")
async def get_event(request: Request, event_id: str, who: Secret) -> Response:
    async with gateway(request).pool.connection() as conn:
        row = await events.get(conn, who.merchant_id, event_id)
    if row is None:
        raise NotFound("event", event_id)
    return json(views.event(row))


@router.get("/balance", summary="The merchant's balance per currency: captured - refunded - fees")
async def get_balance(request: Request, who: Secret) -> Response:
    async with gateway(request).pool.connection() as conn:
        rows = await ledger.balance(conn, who.merchant_id)
        settled = await settlements.settled(conn, who.merchant_id)  # §18: paid out by the bank, net of its fees
    return json({"object": "balance",
                 "available": [{"amount": r["amount"], "currency": r["currency"]} for r in rows],
                 "settled": [{"amount": r["amount"], "currency": r["currency"]} for r in settled if r["amount"]]})


@router.get("/ledger_entries", summary="List the postings of the merchant's journal entries, newest first")
async def list_ledger_entries(
    request: Request, who: Secret, params: Listing, payment_id: str | None = None, refund_id: str | None = None,
) -> Response:
    async with gateway(request).pool.connection() as conn:
        rows = await ledger.page(conn, who.merchant_id, payment_id=payment_id, refund_id=refund_id,
                                 created_gte=params.created_gte, created_lt=params.created_lt,
                                 starting_after=params.starting_after, limit=params.limit)
    return json(page(rows, params.limit, views.ledger_entry))


def _age_s(since: datetime | None, now: datetime) -> float:
    return round(max(0.0, (now - since).total_seconds()), 3) if since is not None else 0


@router.get("/queue", summary="The merchant's work in waiting: webhook deliveries and payments in flight")
async def get_queue(request: Request, who: Secret) -> Response:
    gw = gateway(request)
    first_delay_s = parse_schedule(gw.settings.webhook_retry_schedule)[0]
    async with gw.pool.connection() as conn:
        now = utcnow()
        row = await queue.stats(conn, who.merchant_id, now, first_delay_s)
    body: dict[str, Any] = {
        "object": "queue",
        "webhook_deliveries": {
            "pending": row["pending"],
            "failed": row["failed"],
            "oldest_pending_age_s": _age_s(row["oldest_pending"], now),
        },
        "payments_in_flight": row["payments_in_flight"],
        "outbox_lag_s": _age_s(row["lag_since"], now),
    }
    return json(body)
