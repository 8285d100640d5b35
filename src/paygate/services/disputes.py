"""Disputes (API.md §17): applied from the bank's callbacks, answered by the merchant.

- `apply_callback` runs inside bank_events' receiving transaction (after the event id was claimed, so a
  duplicate delivery never gets here): it locks the payment, then the dispute, and moves the dispute only
  forwards; the journal, `amount_disputed` and the event are written with the move, once.
- `submit_evidence` / `accept` check the dispute under its lock, ask the bank (no lock held across the
  call), then record the answer under the lock again, unless a callback finished the dispute meanwhile.
  The bank's answers are idempotent by state, so a retry after a lost answer is safe.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from paygate.acquirers.base import AcquirerError, Callback, DisputeClosed
from paygate.domain import disputes as rules
from paygate.domain import ledger as postings
from paygate.domain import text
from paygate.domain.ids import new_id
from paygate.errors import InvalidRequest, InvalidState, NotFound, Unavailable
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.services.settle import emit
from paygate.store import disputes, ledger, payments
from paygate.store.db import Conn, Row, pipelined

APPLIED, REDUNDANT, IGNORED, UNKNOWN_REFERENCE = "applied", "redundant", "ignored", "unknown_reference"
_EVENT = {rules.OPEN: "dispute.created", rules.UNDER_REVIEW: "dispute.under_review", rules.WON: "dispute.won",
          rules.LOST: "dispute.lost"}


async def ask_dispute(call: Awaitable[str]) -> str:
    """The bank's answer, or 503 (nothing recorded: the merchant retries; the bank's answer is idempotent)."""
    try:
        return await call
    except DisputeClosed:
        raise
    except AcquirerError:
        raise Unavailable("The bank could not be reached; retry shortly.") from None


def not_open(row: Row) -> InvalidState:
    return InvalidState("dispute_not_open", f"Dispute {row['id']} is {row['status']}; it no longer takes an answer.")


async def _open(conn: Conn, gw: Gateway, p: Row, event: Callback, now: datetime) -> Row | None:
    """Record the bank's dispute, withhold its amount and the fee; None if it was recorded already."""
    assert event.dispute_id is not None
    row = await disputes.insert(conn, {
        "id": new_id("dp"), "merchant_id": p["merchant_id"], "payment_id": p["id"], "acquirer": event.acquirer,
        "bank_dispute_id": event.dispute_id, "amount": event.amount, "currency": p["currency"],
        "reason": event.reason or "general", "status": rules.OPEN, "evidence_due_by": now + rules.EVIDENCE_WINDOW,
        "created_at": now, "updated_at": now,
    })
    if row is None:
        return None
    await payments.update(conn, p, {"amount_disputed": p["amount_disputed"] + event.amount, "updated_at": now})
    await ledger.post(conn, merchant_id=p["merchant_id"], kind="dispute", currency=p["currency"],
                      postings=postings.dispute_postings(event.amount, gw.settings.dispute_fee), now=now,
                      payment_id=p["id"])
    await emit(conn, p["merchant_id"], "dispute.created", rules.view(row), now)
    return row


async def _move(conn: Conn, p: Row, d: Row, target: str, now: datetime, **fields: Any) -> Row:
    """Move a locked dispute forwards; a won dispute gives its amount back (journal and amount_disputed)."""
    d = await disputes.update(conn, d, {"status": target, "updated_at": now, **fields})
    if target == rules.WON:
        await payments.update(conn, p, {"amount_disputed": max(0, p["amount_disputed"] - d["amount"]),
                                        "updated_at": now})
        await ledger.post(conn, merchant_id=p["merchant_id"], kind="dispute_reversal", currency=p["currency"],
                          postings=postings.dispute_won_postings(d["amount"]), now=now, payment_id=p["id"])
    await emit(conn, p["merchant_id"], _EVENT[target], rules.view(d), now)
    return d


async def apply_callback(conn: Conn, gw: Gateway, event: Callback, now: datetime) -> tuple[str, str | None]:
    """(outcome, detail) of a dispute.* callback, inside the caller's transaction."""
    p = await payments.lock(conn, event.reference) if event.reference.startswith("pay_") else None
    if p is None:
        return UNKNOWN_REFERENCE, None
    if p["acquirer"] != event.acquirer:
        return IGNORED, f"sent by acquirer {event.acquirer}; {p['id']} is at {p['acquirer']}"
    assert event.dispute_id is not None
    created = await _open(conn, gw, p, event, now)  # a decision arriving first opens the dispute too
    if created is not None:
        p = await payments.lock(conn, p["id"])
        assert p is not None
    d = await disputes.lock_by_bank_id(conn, event.acquirer, event.dispute_id)
    assert d is not None
    target = rules.CALLBACK_STATUS[event.type]
    if target == rules.OPEN:
        return (APPLIED, f"dispute {d['id']} opened") if created else (REDUNDANT, f"dispute {d['id']} exists")
    if d["status"] == target:
        return REDUNDANT, f"dispute {d['id']} already {target}"
    if not rules.can_move(d["status"], target):
        return IGNORED, f"dispute {d['id']} is {d['status']}; stays"
    await _move(conn, p, d, target, now)
    return APPLIED, f"dispute {d['id']} -> {target}"


async def retrieve(gw: Gateway, who: Principal, dispute_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        row = await disputes.get(conn, who.merchant_id, dispute_id)
    if row is None:
        raise NotFound("dispute", dispute_id)
    return rules.view(row)


async def answer(gw: Gateway, who: Principal, dispute_id: str, evidence: str | None, key: KeyHandle) -> Outcome:
    """Evidence (`evidence` given) or acceptance (None), under the request's Idempotency-Key: the bank is told
    first (it answers the same way when told twice), then the dispute moves and the response is stored with
    the key in that transaction. A 404 or 409 is raised before anything changes (and stored by idempotency)."""
    async with gw.pool.connection() as conn:
        d = await disputes.get(conn, who.merchant_id, dispute_id)
    if d is None:
        raise NotFound("dispute", dispute_id)
    if not rules.answerable(d["status"], d["evidence_due_by"], utcnow()) and not (
            evidence is None and d["status"] == rules.OPEN):
        raise not_open(d)
    bank = gw.acquirer(d["acquirer"])
    try:
        if evidence is None:
            await ask_dispute(bank.accept_dispute(dispute_id=d["bank_dispute_id"]))
        else:
            await ask_dispute(bank.submit_evidence(dispute_id=d["bank_dispute_id"], text=evidence))
    except DisputeClosed:
        raise not_open(d) from None
    now = utcnow()
    async with pipelined(gw.pool) as conn:
        p = await payments.lock(conn, d["payment_id"])
        assert p is not None
        d = await disputes.lock(conn, dispute_id)
        assert d is not None
        if d["status"] == rules.OPEN:  # else a callback got there first: it is already further on
            if evidence is None:
                d = await _move(conn, p, d, rules.LOST, now)
            else:
                d = await _move(conn, p, d, rules.UNDER_REVIEW, now, evidence_text=evidence,
                                evidence_submitted_at=now)
        elif evidence is not None and d["evidence_submitted_at"] is None:
            d = await disputes.update(conn, d, {"evidence_text": evidence, "evidence_submitted_at": now})
        outcome = Outcome.of(200, rules.view(d))
        await key.finish(conn, outcome)
    return outcome


def evidence_text(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= rules.MAX_EVIDENCE:
        raise InvalidRequest("parameter_invalid", "text must be 1-20,000 characters.", param="text")
    problem = text.problem(value, free_text=True)
    if problem is not None:
        raise InvalidRequest("parameter_invalid", f"text {problem}.", param="text")
    return value


def evidence_of(body: Any) -> str:
    """POST /v1/disputes/{id}/evidence's body → its text; 400 (nothing stored under the key) otherwise."""
    if not isinstance(body, dict) or set(body) - {"text"}:
        raise InvalidRequest("parameter_unknown", "evidence takes only text.",
                             param=next(iter(set(body) - {"text"}), None) if isinstance(body, dict) else None)
    if "text" not in body:
        raise InvalidRequest("parameter_missing", "text is required.", param="text")
    return evidence_text(body["text"])
