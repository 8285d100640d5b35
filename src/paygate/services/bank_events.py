"""Incoming bank callbacks (API.md §12): authenticate, parse, and apply each bank event at most once.

The bank retries a callback until it gets a 2xx, and may send one twice, late, out of order. So:

- the URL names the acquirer (`?acquirer=NAME`, as paygate hands it to each acquirer); that acquirer's
  `parse_callback` authenticates it (the simulator: Standard Webhooks over the raw body, 5-minute
  tolerance) before anything is read or written; an event for a payment at another acquirer is
  recorded and ignored;
- the event's row in `bank_events` is inserted first, in the same transaction as its effect: the primary
  key turns every duplicate delivery, however concurrent, into a no-op that still answers 200;
- the effect goes through `settle`, like a request or the recovery worker would, so a payment only ever
  moves forwards and its event and ledger journal are written once;
- an event we cannot apply (unknown payment, contradicting a final state) is recorded and answered 200:
  a non-2xx would only make the bank retry something that will never succeed.

If the transaction cannot commit, the error propagates (503): nothing is recorded, and the bank retries.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from paygate.acquirers.base import BadSignature, Callback, CallbackError
from paygate.domain.ids import new_id
from paygate.domain.payments import Status
from paygate.errors import AuthenticationError, InvalidRequest
from paygate.services import authentication, disputes, settlements
from paygate.services.gateway import Gateway, utcnow
from paygate.services.settle import settle
from paygate.store import bank_events, bank_ops, payments
from paygate.store.db import Conn, Row

log = structlog.get_logger("paygate.bank_events")

# Wait at most this long for a database connection, then answer 503: well inside the bank's own 5 s
# delivery timeout, so that during an outage the bank sees a clean 503 (and retries) rather than a hang.
CONNECTION_TIMEOUT_S = 3.0
APPLIED = "applied"  # the event finished an operation in flight
REDUNDANT = "redundant"  # the operation was already final with this outcome (recovery or the request got there first)
IGNORED = "ignored"  # not applicable: it contradicts a final state, or names nothing we can settle exactly
UNKNOWN_REFERENCE = "unknown_reference"  # no payment with that id


@dataclass(frozen=True)
class Receipt:
    event_id: str
    outcome: str
    duplicate: bool

    def view(self) -> dict[str, Any]:
        return {"object": "bank_event_receipt", "id": self.event_id, "outcome": self.outcome,
                "duplicate": self.duplicate}


def accept(gw: Gateway, acquirer: str | None, headers: Mapping[str, str], body: bytes,
           now: float | None = None) -> Callback:
    """Which acquirer sent it (the name in the URL paygate handed it; none: the only one configured), then
    that acquirer's own authentication and format. 401/400 before anything is recorded."""
    if acquirer is None:
        if len(gw.acquirers) != 1:
            raise InvalidRequest("parameter_missing", "acquirer is required when several acquirers are configured.",
                                 param="acquirer")
        acquirer = next(iter(gw.acquirers))
    if acquirer not in gw.acquirers:
        raise InvalidRequest("parameter_invalid", f"No acquirer {acquirer!r} is configured.", param="acquirer")
    try:
        return gw.acquirers[acquirer].parse_callback(headers, body, time.time() if now is None else now)
    except BadSignature as exc:
        raise AuthenticationError(exc.code, exc.message) from None
    except CallbackError as exc:
        raise InvalidRequest(exc.code, exc.message, param=exc.param) from None


async def _operation_for(conn: Conn, p: Row, event: Callback) -> tuple[Row | None, str | None]:
    """The bank operation of ours that the event reports on, or why there is none we can settle exactly."""
    if event.operation == "refund":
        # The event names the payment, not the refund: with several refunds in flight we could settle the
        # wrong one. Refunds are finished by the recovery worker, which asks the bank by idempotency key.
        return None, "refund callbacks are not applied; refunds are resolved by inquiry"
    if event.operation == "capture" and p["status"] == Status.CAPTURING:
        op = await bank_ops.pending_for_payment(conn, p["id"], "capture")
        if op is not None:
            return op, None
    op = await bank_ops.pending_for_payment(conn, p["id"], "authorization")
    if op is None:
        return None, "the payment has no authorization"
    if event.operation == "capture" and p["method_type"] != "upi" and p["capture_method"] != "automatic":
        return None, "a capture reported for a manual authorization"
    return op, None


async def _apply(conn: Conn, gw: Gateway, event: Callback, now: datetime) -> tuple[str, str | None]:
    """(outcome, detail) of applying the event inside the caller's transaction."""
    if event.operation == "authentication":  # §15: the challenge's result
        outcome, detail, _send = await authentication.apply_callback(conn, gw, event.acquirer, event.reference,
                                                                     event.outcome == "succeeded", now)
        return outcome, detail
    if event.type.startswith("dispute."):  # §17: disputes have their own use case
        return await disputes.apply_callback(conn, gw, event, now)
    if event.type == "settlement.created":  # §18: noted here, fetched and reconciled by the worker
        return await settlements.announce(conn, event, now)
    p = await payments.lock(conn, event.reference) if event.reference.startswith("pay_") else None
    if p is None:
        return UNKNOWN_REFERENCE, None
    if p["acquirer"] != event.acquirer:  # callbacks come from the payment's acquirer or count for nothing
        detail = f"sent by acquirer {event.acquirer}; {p['id']} is at {p['acquirer']}"
        if event.outcome == "succeeded" and event.operation == "authorization":
            # Failover left that acquirer only once it certainly held nothing (decision 0017), so this
            # cannot happen with a bank that honours its fences; if one does, the hold must not stay:
            # a void at that acquirer, sent by the recovery worker, releases it (the payment is untouched).
            op_id = new_id("bop")
            await bank_ops.insert(conn, id=op_id, merchant_id=p["merchant_id"], payment_id=p["id"], kind="void",
                                  amount=event.amount, acquirer=event.acquirer, next_attempt_at=now)
            log.error("stray_authorization", payment=p["id"], acquirer=event.acquirer, void=op_id)
            detail += f"; its hold there is released by void {op_id}"
        return IGNORED, detail
    op, why = await _operation_for(conn, p, event)
    if op is None:
        return IGNORED, why
    if op["status"] != "pending":
        if op["status"] == event.outcome:
            return REDUNDANT, f"{op['kind']} {op['id']} already {op['status']}"
        return IGNORED, f"{op['kind']} {op['id']} is already {op['status']}; payment stays {p['status']}"
    if event.amount != op["amount"]:
        return IGNORED, f"amount {event.amount} differs from the {op['kind']}'s {op['amount']}"
    if op["acquirer"] != event.acquirer:
        return IGNORED, f"sent by acquirer {event.acquirer}; {op['kind']} {op['id']} went to {op['acquirer']}"
    after = await settle(conn, gw, op["id"], event.outcome, event.failure_code, now)
    if after["status"] == p["status"]:  # the state machine refused: late and backwards
        return IGNORED, f"payment stays {p['status']}"
    return APPLIED, f"payment {p['status']} -> {after['status']}"


async def receive(gw: Gateway, event: Callback) -> Receipt:
    """Record and apply one delivery of a bank event, all in one transaction; duplicates change nothing."""
    now = utcnow()
    async with gw.pool.connection(timeout=CONNECTION_TIMEOUT_S) as conn, conn.transaction():
        if not await bank_events.insert(conn, id=event.id, reference=event.reference, type=event.type,
                                        body=event.body, now=now):
            row = await bank_events.count_duplicate(conn, event.id, now)
            outcome = row["outcome"] if row is not None else REDUNDANT
            receipt = Receipt(event.id, outcome, duplicate=True)
        else:
            outcome, detail = await _apply(conn, gw, event, now)
            await bank_events.set_outcome(conn, event.id, outcome, detail)
            receipt = Receipt(event.id, outcome, duplicate=False)
    if event.type == "authentication.succeeded" and receipt.outcome == APPLIED and not receipt.duplicate:
        # the challenge passed: send the authorization it opened, now that its intent is committed (a failure
        # here loses nothing: the browser's return or the recovery worker sends it again with its key)
        try:
            await authentication.authorize_now(gw, event.reference)
        except Exception as exc:
            log.warning("authenticated_authorization_deferred", payment=event.reference, error=type(exc).__name__)
    if receipt.duplicate:
        log.info("bank_event_duplicate", bank_event=event.id, reference=event.reference)
    elif receipt.outcome in (IGNORED, UNKNOWN_REFERENCE):
        log.warning("bank_event_not_applied", bank_event=event.id, reference=event.reference, outcome=receipt.outcome,
                    type=event.type, operation=event.operation)
    return receipt
