"""Incoming bank callbacks (API.md §12): authenticate, parse, and apply each bank event at most once.

The bank retries a callback until it gets a 2xx, and may send one twice, late, out of order. So:

- the signature (Standard Webhooks, over the raw body, 5-minute tolerance) is the only authentication;
  a bad one is refused before anything is read or written;
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

import orjson
import structlog

from paygate.domain import text
from paygate.domain.payments import Status
from paygate.errors import AuthenticationError, InvalidRequest
from paygate.services.gateway import Gateway, utcnow
from paygate.services.settle import settle
from paygate.store import bank_events, bank_ops, payments
from paygate.store.db import Conn, Row
from paygate.webhooks import standard as signing

log = structlog.get_logger("paygate.bank_events")

TOLERANCE_S = 300
# Wait at most this long for a database connection, then answer 503: well inside the bank's own 5 s
# delivery timeout, so that during an outage the bank sees a clean 503 (and retries) rather than a hang.
CONNECTION_TIMEOUT_S = 3.0
TYPES = {"operation.succeeded": "succeeded", "operation.failed": "failed"}
OPERATIONS = frozenset({"authorization", "capture", "refund"})

APPLIED = "applied"  # the event finished an operation in flight
REDUNDANT = "redundant"  # the operation was already final with this outcome (recovery or the request got there first)
IGNORED = "ignored"  # not applicable: it contradicts a final state, or names nothing we can settle exactly
UNKNOWN_REFERENCE = "unknown_reference"  # no payment with that id


@dataclass(frozen=True)
class BankEvent:
    id: str
    type: str
    outcome: str  # "succeeded" | "failed"
    reference: str
    operation: str
    amount: int
    failure_code: str | None
    body: dict[str, Any]


@dataclass(frozen=True)
class Receipt:
    event_id: str
    outcome: str
    duplicate: bool

    def view(self) -> dict[str, Any]:
        return {"object": "bank_event_receipt", "id": self.event_id, "outcome": self.outcome,
                "duplicate": self.duplicate}


def authenticate(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Raise 401 unless the body carries a valid, fresh signature of the bank (constant-time compare)."""
    msg_id, ts, sig = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not ts or not sig:
        raise AuthenticationError("missing_signature",
                                  "Bank callbacks must carry webhook-id, webhook-timestamp and webhook-signature.")
    if not signing.verify(secret, msg_id, ts, body, sig, tolerance_s=TOLERANCE_S,
                          now=time.time() if now is None else now):
        raise AuthenticationError("invalid_signature", "The callback signature is invalid or too old.")


def _bad(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest("parameter_invalid", message, param=param)


def parse(body: bytes) -> BankEvent:
    """The signed body → a BankEvent; 400 if it is not the shape of API.md §12 (a bank bug, not a retry)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad("The body is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise _bad("The body must be a JSON object.")
    event_id, type_, data = doc.get("id"), doc.get("type"), doc.get("data")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 255:
        raise _bad("id must be a string of 1-255 characters.", "id")
    if type_ not in TYPES:
        raise _bad("type must be operation.succeeded or operation.failed.", "type")
    if not isinstance(data, dict):
        raise _bad("data must be an object.", "data")
    reference, operation, amount = data.get("reference"), data.get("operation"), data.get("amount")
    failure_code = data.get("failure_code")
    if not isinstance(reference, str) or not 1 <= len(reference) <= 255:
        raise _bad("data.reference must be a string of 1-255 characters.", "data[reference]")
    if operation not in OPERATIONS:
        raise _bad("data.operation must be authorization, capture or refund.", "data[operation]")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise _bad("data.amount must be a non-negative integer.", "data[amount]")
    if failure_code is not None and (not isinstance(failure_code, str) or len(failure_code) > 100):
        raise _bad("data.failure_code must be a short string.", "data[failure_code]")
    # API.md §19: a NUL would make the insert fail (a 500 the bank retries for ever); refuse it, naming it.
    for param, value in (("id", event_id), ("data[reference]", reference), ("data[failure_code]", failure_code)):
        if value is not None and not text.acceptable(value):
            raise _bad(f"{param} must not contain control characters.", param)
    if not text.storable(doc):
        raise _bad("The body must not contain NUL characters or unpaired surrogates.")
    return BankEvent(id=event_id, type=type_, outcome=TYPES[type_], reference=reference, operation=operation,
                     amount=amount, failure_code=failure_code, body=doc)


async def _operation_for(conn: Conn, p: Row, event: BankEvent) -> tuple[Row | None, str | None]:
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


async def _apply(conn: Conn, gw: Gateway, event: BankEvent, now: datetime) -> tuple[str, str | None]:
    """(outcome, detail) of applying the event inside the caller's transaction."""
    p = await payments.lock(conn, event.reference) if event.reference.startswith("pay_") else None
    if p is None:
        return UNKNOWN_REFERENCE, None
    op, why = await _operation_for(conn, p, event)
    if op is None:
        return IGNORED, why
    if op["status"] != "pending":
        if op["status"] == event.outcome:
            return REDUNDANT, f"{op['kind']} {op['id']} already {op['status']}"
        return IGNORED, f"{op['kind']} {op['id']} is already {op['status']}; payment stays {p['status']}"
    if event.amount != op["amount"]:
        return IGNORED, f"amount {event.amount} differs from the {op['kind']}'s {op['amount']}"
    after = await settle(conn, gw, op["id"], event.outcome, event.failure_code, now)
    if after["status"] == p["status"]:  # the state machine refused: late and backwards
        return IGNORED, f"payment stays {p['status']}"
    return APPLIED, f"payment {p['status']} -> {after['status']}"


async def receive(gw: Gateway, event: BankEvent) -> Receipt:
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
    if receipt.duplicate:
        log.info("bank_event_duplicate", bank_event=event.id, reference=event.reference)
    elif receipt.outcome in (IGNORED, UNKNOWN_REFERENCE):
        log.warning("bank_event_not_applied", bank_event=event.id, reference=event.reference, outcome=receipt.outcome,
                    type=event.type, operation=event.operation)
    return receipt
