"""Apply a bank outcome to a payment or refund: the one place where in-flight work becomes final.

Request handlers, the recovery worker and bank callbacks all finish operations through `settle`, so an
outcome learned late is recorded exactly as if the original request had learned it: same status, same
ledger entries, same single event. Every function here runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from paygate.domain import ledger as postings
from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.domain.money import fee_for
from paygate.domain.payments import Status, can_transition, event_for, status_after_refund
from paygate.services import emails
from paygate.services.gateway import Gateway
from paygate.store import bank_ops, events, ledger, orders, payments, refunds
from paygate.store.db import Conn, Row

FAILURE_MESSAGES = {
    "card_declined": "The card was declined.",
    "insufficient_funds": "The card has insufficient funds.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "processing_error": "The bank could not process the payment; nothing was charged.",
    "payment_declined": "The payment was declined by the customer's bank.",
    "authentication_failed": "The customer did not pass the bank's authentication.",
    "authentication_timeout": "The customer did not complete the bank's authentication in time.",
    "authentication_required": "The card's bank requires the customer to authenticate this payment.",
}


class NotAllowed(Exception):
    """A move the state machine forbids; callers decide whether that is an error or a late duplicate."""


async def emit(conn: Conn, merchant_id: str, type: str, obj: dict[str, Any], now: datetime) -> None:
    await events.emit(conn, event_id=new_id("evt"), merchant_id=merchant_id, type=type, object_id=obj["id"],
                      data=obj, now=now)


# What each transition writes besides the status, computed once for both of its writers: the statements here
# and plan_authorization's one statement (docs/decisions/0026).
def _history(p: Row, target: Status, now: datetime) -> list[dict[str, Any]]:
    history = list(p["status_history"])
    if target.value != p["status"]:
        history.append({"status": target.value, "at": views.ts(now)})
    return history


def _failed_fields(code: str) -> dict[str, Any]:
    return {"failure_code": code, "failure_message": FAILURE_MESSAGES.get(code, "The payment failed.")}


def _captured_fields(gw: Gateway, amount: int) -> tuple[dict[str, Any], list[postings.Posting]]:
    """The captured payment's amounts, and the journal's postings that record the money taken."""
    fee = fee_for(amount, gw.settings.fee_bps, gw.settings.fee_fixed)
    fields = {"amount_captured": amount, "amount_fee": fee, "authorization_expires_at": None}
    return fields, postings.capture_postings(amount, fee)


def _authorized_fields(gw: Gateway, p: Row) -> dict[str, Any]:
    return {"authorization_expires_at": p["created_at"] + timedelta(seconds=gw.settings.auth_ttl)}


async def move(conn: Conn, p: Row, target: Status, now: datetime, *, unwritten: Mapping[str, Any] | None = None,
               resolving: bank_ops.Resolution | None = None, **fields: Any) -> Row:
    """Move a locked payment to `target`, appending to its history and emitting the status's event.

    `unwritten`: fields already merged into `p` but not yet stored (settle's attempts and references), and
    `resolving`: the final answer of the operation that makes the move; both are written by the same
    statement, so the event is of the row as stored. Nothing is written if the move is refused
    (NotAllowed): the caller still owns them then."""
    current = Status(p["status"])
    if not can_transition(current, target):
        raise NotAllowed(f"{current} -> {target}")
    row = await payments.update(conn, p, {**(unwritten or {}), "status": target.value,
                                          "status_history": _history(p, target, now),
                                          "updated_at": now, **fields}, resolving=resolving)
    event_type = event_for(target, method_type=row["method_type"]) if target is not current else None
    if event_type:
        await emit(conn, row["merchant_id"], event_type, views.payment(row), now)
    return row


async def capture_money(conn: Conn, gw: Gateway, p: Row, amount: int, now: datetime, *,
                        unwritten: Mapping[str, Any] | None = None,
                        resolving: bank_ops.Resolution | None = None) -> Row:
    """Money taken: the payment becomes `captured`, the ledger records it, the order may become paid."""
    fields, journal = _captured_fields(gw, amount)
    row = await move(conn, p, Status.CAPTURED, now, unwritten=unwritten, resolving=resolving, **fields)
    await ledger.post(conn, merchant_id=row["merchant_id"], kind="capture", currency=row["currency"],
                      postings=journal, now=now, payment_id=row["id"])
    await emails.queue_payment_receipt(conn, row, now)  # beside payment.captured, in its transaction
    if row["order_id"]:
        order = await orders.add_paid(conn, row["order_id"], amount, now)
        if order is not None and order["previous_status"] != "paid":
            await emit(conn, order["merchant_id"], "order.paid", views.order(order, gw.settings.public_url), now)
    return row


async def fail(conn: Conn, p: Row, code: str, now: datetime, *, unwritten: Mapping[str, Any] | None = None,
               resolving: bank_ops.Resolution | None = None) -> Row:
    return await move(conn, p, Status.FAILED, now, unwritten=unwritten, resolving=resolving, **_failed_fields(code))


async def settle(conn: Conn, gw: Gateway, op_id: str, outcome: str, failure_code: str | None,
                 now: datetime, acquirer_reference: str | None = None, capture_reference: str | None = None, *,
                 locked: tuple[Row, Row] | None = None, also: Mapping[str, Any] | None = None) -> Row:
    """Record the bank's final answer for operation `op_id`; idempotent. Returns the payment row.

    Locks the payment; the operation's status only ever changes under its payment's lock. `acquirer_reference`
    is the bank's id of the operation, `capture_reference` that of the capture an automatic-capture
    authorization made with it (both land in the payment's `acquirer_references`, §14).

    `locked`: the (payment, operation) pair the caller already holds under the payment's lock in this
    transaction (`bank_ops.lock_with_payment`, nothing written to the payment since), so it is not read
    again. `also`: payment fields of the caller's to write with the outcome (the attempt: services/authorize.py)
    — one UPDATE of the payment per settle, written even when the answer changes nothing. The operation's
    resolution is joined to that UPDATE (or written alone when there is none)."""
    p, op = locked if locked is not None else await bank_ops.lock_with_payment(conn, op_id)
    unwritten = dict(also or {})
    p = {**p, **unwritten}  # the payment as it will be stored: what every view and event of it shows
    if op["status"] != "pending" or outcome not in ("succeeded", "failed"):
        return await _write(conn, p, unwritten, None)
    resolving: bank_ops.Resolution | None = bank_ops.Resolution(op_id, outcome, failure_code, now, acquirer_reference)
    op = {**op, "acquirer_reference": acquirer_reference or op.get("acquirer_reference")}
    ok = outcome == "succeeded"
    kind = op["kind"]
    if kind == "refund":  # resolved first, as before: the refund's lock is taken after the operation's write
        await _write(conn, p, {}, resolving)
        resolving = None
    if ok and kind in ("authorization", "capture", "void") and op["acquirer"] == p["acquirer"]:
        # only the payment's own acquirer's ids: a stale operation elsewhere never names the payment's records
        refs = {**views.NO_REFERENCES, **(p.get("acquirer_references") or {})}
        refs[kind] = acquirer_reference
        if kind == "authorization" and capture_reference is not None:
            refs["capture"] = capture_reference
        unwritten["acquirer_references"] = refs
        p = {**p, "acquirer_references": refs}
    try:
        moved = await _apply(conn, gw, p, op, ok, failure_code, now, unwritten, resolving)
    except NotAllowed:
        moved = None
    return moved if moved is not None else await _write(conn, p, unwritten, resolving)


@dataclass(frozen=True)
class Planned:
    """A card authorization's final answer for its pending payment, computed as `settle` applies it (through
    `_apply`: `fail`, `capture_money` or `move` to authorized) but without writing: for the create's outcome
    in one statement (services/authorize.py `_conclude_at_once`, docs/decisions/0026)."""

    row: Row  # the payment as it will be stored: what its event and the answer show
    event_type: str
    journal: list[postings.Posting]  # the capture's postings; empty for none
    resolution: bank_ops.Resolution


def plan_authorization(gw: Gateway, p: Row, op_id: str, op_acquirer: str, outcome: str, failure_code: str | None,
                       now: datetime, acquirer_reference: str | None, capture_reference: str | None,
                       also: Mapping[str, Any]) -> Planned | None:
    """What `settle(op_id, …, locked=(p, op), also=also)` would write for the pending authorization `op` of
    the pending card payment `p` — or None where it would do more than this covers (a receipt to queue, an
    order to pay: those keep settle's path). Keep it in step with `settle`, `_apply`, `move`, `fail` and
    `capture_money` (tests/integration/test_outcome_at_once.py compares the two paths' rows)."""
    if outcome not in ("succeeded", "failed") or p["status"] != Status.PENDING or p["method_type"] != "card":
        return None
    if p["order_id"] or p.get("receipt_email") or p.get("customer"):  # capture_money's order and receipt
        return None
    p = {**p, **also}
    ok = outcome == "succeeded"
    if ok and op_acquirer == p["acquirer"]:
        refs = {**views.NO_REFERENCES, **(p.get("acquirer_references") or {})}
        refs["authorization"] = acquirer_reference
        if capture_reference is not None:
            refs["capture"] = capture_reference
        p = {**p, "acquirer_references": refs}
    journal: list[postings.Posting] = []
    fields: dict[str, Any]
    if not ok:
        target, fields = Status.FAILED, _failed_fields(failure_code or "processing_error")
    elif p["capture_method"] == "automatic":
        target = Status.CAPTURED
        fields, journal = _captured_fields(gw, p["amount"])
    else:
        target, fields = Status.AUTHORIZED, _authorized_fields(gw, p)
    event_type = event_for(target, method_type=p["method_type"])
    if event_type is None or not can_transition(Status.PENDING, target):
        return None
    row = {**p, "status": target.value, "status_history": _history(p, target, now), "updated_at": now, **fields}
    return Planned(row, event_type, journal,
                   bank_ops.Resolution(op_id, outcome, failure_code, now, acquirer_reference))


async def _write(conn: Conn, p: Row, unwritten: dict[str, Any], resolving: bank_ops.Resolution | None) -> Row:
    """What no transition wrote: the fields merged into `p` and the operation's resolution, in one statement
    (the resolution alone when no field is left; nothing when neither is)."""
    if unwritten:
        return await payments.update(conn, p, unwritten, resolving=resolving)
    if resolving is not None:
        await bank_ops.resolve(conn, resolving.op_id, resolving.status, resolving.failure_code, resolving.at,
                               resolving.acquirer_reference)
    return p


async def _apply(conn: Conn, gw: Gateway, p: Row, op: Row, ok: bool, failure_code: str | None, now: datetime,
                 unwritten: dict[str, Any], resolving: bank_ops.Resolution | None) -> Row | None:
    """The transition a final answer of `op` makes, writing `unwritten` and `resolving` with it; None when it
    makes none (then neither is written here)."""
    status = Status(p["status"])
    kind = op["kind"]
    if kind == "authorization" and status is Status.PENDING:
        if not ok:
            return await fail(conn, p, failure_code or "processing_error", now, unwritten=unwritten,
                              resolving=resolving)
        if p["capture_method"] == "automatic" or p["method_type"] == "upi":
            return await capture_money(conn, gw, p, p["amount"], now, unwritten=unwritten, resolving=resolving)
        return await move(conn, p, Status.AUTHORIZED, now, unwritten=unwritten, resolving=resolving,
                          **_authorized_fields(gw, p))
    if kind == "capture" and status is Status.CAPTURING:
        if ok:
            return await capture_money(conn, gw, p, op["amount"], now, unwritten=unwritten, resolving=resolving)
        return await move(conn, p, Status.EXPIRED, now, unwritten=unwritten, resolving=resolving,
                          authorization_expires_at=None)
    if kind == "void" and status is Status.VOIDING:
        return await move(conn, p, Status.VOIDED if ok else Status.EXPIRED, now, unwritten=unwritten,
                          resolving=resolving, authorization_expires_at=None)
    if kind == "expiry" and status is Status.VOIDING:  # the hold is gone either way
        return await move(conn, p, Status.EXPIRED, now, unwritten=unwritten, resolving=resolving,
                          authorization_expires_at=None)
    if kind == "refund":
        return await _settle_refund(conn, p, op, ok, failure_code, now, unwritten)
    return None


async def _settle_refund(conn: Conn, p: Row, op: Row, ok: bool, failure_code: str | None, now: datetime,
                         unwritten: dict[str, Any]) -> Row | None:
    r = await refunds.lock(conn, op["refund_id"])
    assert r is not None
    if r["status"] != "pending":
        return None
    reserved = p["amount_refund_reserved"] - r["amount"]
    if ok:
        refunded = p["amount_refunded"] + r["amount"]
        target = status_after_refund(p["amount_captured"], refunded)
        p = await move(conn, p, target, now, unwritten=unwritten, amount_refunded=refunded,
                       amount_refund_reserved=reserved)
        await ledger.post(conn, merchant_id=p["merchant_id"], kind="refund", currency=p["currency"],
                          postings=postings.refund_postings(r["amount"]), now=now, payment_id=p["id"],
                          refund_id=r["id"])
        r = await refunds.update(conn, r["id"], {"status": "succeeded", "updated_at": now,
                                                 "acquirer_reference": op.get("acquirer_reference")})
        await emit(conn, p["merchant_id"], "refund.succeeded", views.refund(r), now)
        await emails.queue_refund_receipt(conn, p, r, now)
    else:
        p = await payments.update(conn, p, {**unwritten, "amount_refund_reserved": reserved, "updated_at": now})
        r = await refunds.update(conn, r["id"], {"status": "failed", "failure_code": failure_code or "processing_error",
                                                 "updated_at": now})
        await emit(conn, p["merchant_id"], "refund.failed", views.refund(r), now)
    return p
