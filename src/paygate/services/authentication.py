"""Customer authentication (API.md §15; docs/authentication.md; decision 0018).

A payment with an enrolled card (domain/authentication.py) does not go to `services/authorize.py` at once:

    1. commit the intent: the payment `requires_action` and an `authentication` bank operation at the first
       acquirer of its routing (services/payments.create), key checkpoint `authentication_started`
    2. `begin`: ask that acquirer to open the challenge, with the operation's id as Idempotency-Key
    3. commit its answer (`_apply`): the challenge page → `next_action` + `payment.requires_action`, 201;
       a refusal → `failed` (402)

Then the customer answers the bank's page. The result arrives by whichever comes first — the browser's
return (`browser_return`, which asks the bank: the browser carries no result), the bank's signed callback
(`apply_callback`), or the recovery worker's inquiry (`recover`) — and is applied once, under the payment's
row lock, by `_apply`: failed → `failed` / `authentication_failed`; passed → `pending` plus an authorization
intent at the SAME acquirer, naming the bank's authentication instead of the card (paygate never kept the
card; the bank knows which card it authenticated). `authorize_now` then sends that intent through the one
authorization use case (services/authorize.py, without failover: the authentication binds the acquirer),
which captures when the payment is automatic, exactly as for any card.

Because that authorization carries no card, it can be sent again with its own key by anyone (the bank acts
once per key): the request that applied the result, a browser's return, and the recovery worker may all
drive it, and a crash between the authentication and the authorization loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import structlog

from paygate import crashpoints
from paygate.acquirers.base import UNKNOWN, AcquirerResult, NotSent, OutcomeUnknown, Unavailable
from paygate.domain import authentication as rules
from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.domain.payments import Status
from paygate.services import authorize, saved_methods
from paygate.services.gateway import Gateway, Outcome, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.services.settle import emit, fail, move
from paygate.store import bank_ops, payments
from paygate.store.db import Conn, Row, pipelined

log = structlog.get_logger("paygate.authentication")

CHECKPOINT = "authentication_started"
# Recovery looks at a challenge awaiting its customer only after the timeout would have failed it (the timeout
# loop does that): until then the customer, the callback and the browser's return are the ones to finish it.
_AWAITING_MARGIN_S = 60


def return_endpoint(gw: Gateway, payment_id: str) -> str:
    """Where the bank sends the customer's browser (303) once the challenge is answered."""
    return f"{gw.settings.public_url.rstrip('/')}/payments/{quote(payment_id, safe='')}/authentication/return"


def outcome_page(gw: Gateway, payment_id: str) -> str:
    """Where the browser ends without a return_url: a small page showing the payment's outcome."""
    return f"{gw.settings.public_url.rstrip('/')}/payments/{quote(payment_id, safe='')}/authentication"


@dataclass(frozen=True)
class Send:
    """An authorization intent committed after a passed challenge, to be sent (`authorize_now`)."""

    payment_id: str


# --- applying what the bank said, under the payment's lock ------------------------------------------------


async def _authenticated(conn: Conn, gw: Gateway, p: Row, op: Row, reference: str, now: datetime) -> Row:
    """The challenge passed: `pending`, and the authorization's intent at the acquirer that authenticated."""
    await bank_ops.resolve(conn, op["id"], "succeeded", None, now, reference)
    p = await move(conn, p, Status.PENDING, now)
    await bank_ops.insert(conn, id=new_id("bop"), merchant_id=p["merchant_id"], payment_id=p["id"],
                          kind="authorization", amount=p["amount"], acquirer=op["acquirer"],
                          next_attempt_at=now + timedelta(seconds=authorize.RECOVERY_GRACE_S),
                          authentication_ref=reference)
    return p


async def _apply(conn: Conn, gw: Gateway, op_id: str, result: AcquirerResult, now: datetime) -> tuple[Row, Send | None]:
    """Record the bank's answer about authentication `op_id`; idempotent (a late or repeated answer, or one for a
    payment no longer waiting — voided, timed out — changes nothing). Returns the payment, and the authorization
    to send when this answer is the one that passed the challenge."""
    p, op = await bank_ops.lock_with_payment(conn, op_id)
    if op["status"] != "pending" or p["status"] != Status.REQUIRES_ACTION:
        return p, None
    reference = result.operation_id or await _reference(conn, op_id)
    if result.outcome == "pending":
        if result.challenge_url is not None and p.get("challenge_url") is None and result.operation_id:
            awaiting = p["created_at"] + timedelta(seconds=gw.settings.authentication_ttl + _AWAITING_MARGIN_S)
            await bank_ops.note_reference(conn, op_id, result.operation_id, awaiting)
            p = await payments.update(conn, p, {"challenge_url": result.challenge_url, "updated_at": now})
            await emit(conn, p["merchant_id"], "payment.requires_action", views.payment(p), now)
        return p, None
    if result.outcome == "succeeded" and reference is not None:
        return await _authenticated(conn, gw, p, op, reference, now), Send(p["id"])
    if result.outcome == "failed":
        code = result.failure_code or "processing_error"
        await bank_ops.resolve(conn, op_id, "failed", code, now, reference)
        await saved_methods.discard_held(conn, p["id"])
        return await fail(conn, p, code, now), None
    return p, None  # unknown: the intent stays for recovery


async def _reference(conn: Conn, op_id: str) -> str | None:
    row = await bank_ops.get(conn, op_id)
    return row["acquirer_reference"] if row else None


async def _ask(gw: Gateway, op: Row) -> AcquirerResult:
    """What the bank says of authentication `op` now (an inquiry: it also fences a request it never got)."""
    try:
        return await gw.acquirer(op["acquirer"]).inquire(key=op["id"])
    except Unavailable as exc:
        log.warning("authentication_inquiry_unanswered", op=op["id"], detail=str(exc))
        return UNKNOWN


# --- 2. open the challenge (services/payments.create committed the intent) --------------------------------


async def begin(gw: Gateway, key: KeyHandle, *, payment_id: str, op_id: str, acquirer: str, amount: int,
                currency: str, payment_method: dict[str, Any], rest: list[str] | None = None) -> Outcome:
    """Open the challenge at `acquirer` (intent `op_id` committed). Only when it certainly never reached that
    acquirer (NotSent: nothing exists there) does it move on along `rest`, the routing's next acquirers, as an
    authorization's failover would (decision 0017); whoever opens the challenge then authorizes."""
    rest = list(rest or [])
    while True:
        bank = gw.acquirer(acquirer)
        try:
            result = await bank.authenticate(key=op_id, reference=payment_id, amount=amount, currency=currency,
                                             payment_method=payment_method, callback_url=gw.callback_url(acquirer),
                                             return_url=return_endpoint(gw, payment_id))
        except NotSent as exc:  # certainly never reached the bank: nothing to authenticate there
            log.warning("authentication_not_sent", acquirer=acquirer, op=op_id, detail=str(exc))
            if rest:
                unsent = authorize.Attempt("unavailable", AcquirerResult("failed", authorize.NOT_PROCESSED))
                moved = await authorize.move_on(gw, op_id, acquirer, unsent, rest[0], kind="authentication",
                                                waiting=Status.REQUIRES_ACTION)
                if moved is not None:
                    acquirer, op_id = rest.pop(0), moved
                    continue
            result = AcquirerResult("failed", "processing_error")
        except OutcomeUnknown as exc:
            log.warning("authentication_outcome_unknown", acquirer=acquirer, op=op_id, detail=str(exc))
            try:
                result = await bank.inquire(key=op_id)  # a fence too: a late arrival can never open a challenge
            except Unavailable:
                result = UNKNOWN  # 201 requires_action without next_action yet; recovery asks the bank again
        crashpoints.reach("after_bank_authentication")
        return await _conclude(gw, key, op_id, result)


async def _conclude(gw: Gateway, key: KeyHandle, op_id: str, result: AcquirerResult) -> Outcome:
    from paygate.services.payments import render  # one rendering of a create answer (payments imports us)

    async with pipelined(gw.pool) as conn:
        p, send = await _apply(conn, gw, op_id, result, utcnow())
        if send is None:
            outcome = render(p)
            await key.finish(conn, outcome)
            return outcome
    # no challenge was needed after all (frictionless): authorize now, answering with its outcome
    return await authorize_now(gw, send.payment_id, key) or render(p)


async def resume(gw: Gateway, key: KeyHandle, payment_id: str) -> Outcome:
    """A retry of the create with the same Idempotency-Key, whose first request did not finish: ask the bank
    (an inquiry, never a second send: the first request may still be sending) and answer what is now known."""
    from paygate.services.payments import render

    async with gw.pool.connection() as conn:
        p = await find(conn, payment_id)
        op = await bank_ops.pending_for_payment(conn, payment_id, "authentication")
    assert p is not None and op is not None
    if op["status"] == "pending" and p["status"] == Status.REQUIRES_ACTION and p.get("challenge_url") is None:
        return await _conclude(gw, key, op["id"], await _ask(gw, op))
    if p["status"] == Status.PENDING:
        await authorize_now(gw, payment_id)
        async with gw.pool.connection() as conn:
            p = await find(conn, payment_id)
        assert p is not None
    outcome = render(p)
    async with pipelined(gw.pool) as conn:
        await key.finish(conn, outcome)
    return outcome


# --- the authorization after a passed challenge -------------------------------------------------------------


async def authorize_now(gw: Gateway, payment_id: str, key: KeyHandle | None = None) -> Outcome | None:
    """Send the payment's authorization made with its authentication, if one is still open, and settle it (the
    one authorization use case, without failover). Safe to run concurrently and repeatedly: one key, one act at
    the bank, one settlement under the row lock. None when there was nothing to send."""
    async with gw.pool.connection() as conn:
        p = await find(conn, payment_id)
        op = await bank_ops.pending_for_payment(conn, payment_id, "authorization")
    if (p is None or p["status"] != Status.PENDING or op is None or op["status"] != "pending"
            or op.get("authentication_ref") is None):
        return None
    request = authorize.Request(
        payment_id=payment_id, merchant_id=p["merchant_id"], amount=op["amount"], currency=p["currency"],
        payment_method={"type": "authenticated", "authentication": op["authentication_ref"]},
        capture=p["capture_method"] == "automatic", is_card=True, resendable=True)
    crashpoints.reach("before_authenticated_authorization")
    return await authorize.run(gw, key or KeyHandle(p["merchant_id"], None), request, op["acquirer"], op["id"], [],
                               before_settle=lambda conn, op_id, outcome: saved_methods.save_held(conn, gw, op_id,
                                                                                                  outcome))


async def find(conn: Conn, payment_id: str) -> Row | None:
    """A payment by id alone: the browser's pages and the bank's results name no merchant."""
    return await payments.find(conn, payment_id)


# --- completion: the browser's return, the bank's callback, recovery ----------------------------------------


async def _settle_answer(gw: Gateway, op_id: str, result: AcquirerResult) -> None:
    async with pipelined(gw.pool) as conn:
        p, _send = await _apply(conn, gw, op_id, result, utcnow())
    crashpoints.reach("after_authentication_result")
    # whoever applied the result (this answer, or a concurrent callback a moment ago), the authorization it
    # opened is driven from here too: the browser is sent on only once the payment is past it
    await authorize_now(gw, p["id"])


async def browser_return(gw: Gateway, payment_id: str) -> str | None:
    """The customer's browser is back from the bank: learn the result from the bank, finish the authorization,
    and say where the browser goes now — the merchant's return_url with `payment_id` (or paygate's outcome
    page); while the payment still `requires_action` (unanswered, or the bank's answer unknown), the challenge
    page again, or paygate's outcome page (waiting) when that page is not known. None: no such payment."""
    async with gw.pool.connection() as conn:
        p = await find(conn, payment_id)
        op = await bank_ops.pending_for_payment(conn, payment_id, "authentication")
    if p is None or op is None:
        return None
    if p["status"] == Status.REQUIRES_ACTION and op["status"] == "pending":
        result = await _ask(gw, op)
        if result.outcome == "pending" and p.get("challenge_url"):
            return str(p["challenge_url"])  # not answered yet: back to the bank's page
        await _settle_answer(gw, op["id"], result)
    else:
        await authorize_now(gw, payment_id)  # the callback got there first, or a crash left it in flight
    async with gw.pool.connection() as conn:
        p = await find(conn, payment_id)
    assert p is not None
    if p["status"] == Status.REQUIRES_ACTION:
        # the bank's answer is still unknown (its inquiry unanswered, or pending with no page recorded): never
        # the merchant's return_url yet (§15.3) — the bank's page when known, else paygate's waiting page
        return str(p["challenge_url"]) if p.get("challenge_url") else outcome_page(gw, payment_id)
    if p.get("return_url"):
        return rules.with_query(p["return_url"], payment_id=payment_id)
    return outcome_page(gw, payment_id)


async def apply_callback(conn: Conn, gw: Gateway, acquirer: str, reference: str, passed: bool,
                         now: datetime) -> tuple[str, str | None, Send | None]:
    """A signed `authentication.*` callback, inside the bank-event transaction: (outcome, detail, what to send
    after the commit). Outcomes are those of services/bank_events.py."""
    p = await payments.lock(conn, reference) if reference.startswith("pay_") else None
    if p is None:
        return "unknown_reference", None, None
    if p["acquirer"] != acquirer:
        return "ignored", f"sent by acquirer {acquirer}; {p['id']} is at {p['acquirer']}", None
    op = await bank_ops.pending_for_payment(conn, p["id"], "authentication")
    if op is None:
        return "ignored", "the payment has no authentication", None
    outcome: Literal["succeeded", "failed"] = "succeeded" if passed else "failed"
    if op["status"] != "pending":
        if op["status"] == outcome:
            return "redundant", f"authentication {op['id']} already {op['status']}", None
        return "ignored", f"authentication {op['id']} is already {op['status']}; payment stays {p['status']}", None
    if p["status"] != Status.REQUIRES_ACTION:
        return "ignored", f"payment stays {p['status']}", None
    if op.get("acquirer_reference") is None:
        # the bank's answer to the authentication was never recorded (a crash): recovery's inquiry finishes it
        return "ignored", "the authentication's answer is not recorded yet; recovery will ask the bank", None
    result = AcquirerResult(outcome, None if passed else rules.FAILED, op["acquirer_reference"])
    after, send = await _apply(conn, gw, op["id"], result, now)
    return "applied", f"payment {p['status']} -> {after['status']}", send


async def recover(gw: Gateway, op: Row) -> bool:
    """The recovery worker's turn on an authentication, or on an authorization made with one; True when the
    operation is final now."""
    if op["kind"] == "authorization":
        await authorize_now(gw, op["payment_id"])
    else:
        result = await _ask(gw, op)
        await _settle_answer(gw, op["id"], result)
    async with gw.pool.connection() as conn:
        row = await bank_ops.get(conn, op["id"])
    return row is not None and row["status"] != "pending"


# --- the end of a challenge without an answer ---------------------------------------------------------------


async def close(conn: Conn, p: Row, target: Status, code: str | None, now: datetime) -> Row:
    """End a locked payment's wait for its customer: `voided` (the merchant's void) or `failed` with `code`.
    Nothing is held at the bank, so there is nothing to release; a later result finds it closed."""
    op = await bank_ops.pending_for_payment(conn, p["id"], "authentication")
    if op is not None and op["status"] == "pending":
        await bank_ops.resolve(conn, op["id"], "failed", code or "voided", now)
    await saved_methods.discard_held(conn, p["id"])
    if target is Status.VOIDED:
        return await move(conn, p, Status.VOIDED, now)
    return await fail(conn, p, code or rules.FAILED, now)


async def expire_once(gw: Gateway, limit: int = 100) -> int:
    """Fail the challenges not completed within PAYGATE_AUTHENTICATION_TTL (`authentication_timeout`)."""
    async with pipelined(gw.pool) as conn:
        now = utcnow()
        due = await payments.challenges_started_before(conn, now - timedelta(seconds=gw.settings.authentication_ttl),
                                                       limit)
        for row in due:
            p = await payments.lock(conn, row["id"])
            assert p is not None
            await close(conn, p, Status.FAILED, rules.TIMED_OUT, now)
    return len(due)
