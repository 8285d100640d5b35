"""The authorization step of creating a payment, with failover (API.md §14, docs/decisions/0017).

`services/payments.create` commits the payment and its first intent (a `bank_operations` row at the first
acquirer of `routing.plan`), then hands over here. For each acquirer of the plan, in order:

    call it with the intent's own key ─┬─ succeeded / declined ───────────────→ final (settle)
                                       ├─ NotSent ─────────────────────────────→ unavailable: move on
                                       ├─ OutcomeUnknown → inquire ─┬─ applied ─→ final (settle)
                                       │                            ├─ not applied (fenced) → move on
                                       │                            └─ no answer → stays pending HERE
                                       └─ failed processing_error ────────────→ unavailable: move on

"Move on" is one transaction under the payment's lock: the attempt's operation is settled `failed` (never
left pending: a stale pending authorization elsewhere is what recovery would later "settle" at the wrong
bank), the attempt is recorded (health + the payment's `acquirer_attempts`), and the next acquirer's intent
is written with a new key and becomes the payment's `acquirer`. It happens only after certainty that the
acquirer did not authorize — so at most one attempt of a payment is ever not-certainly-failed.

Unknown is never followed by another acquirer: the payment answers 201 `pending` with that acquirer, and the
recovery worker (or a retry with the same Idempotency-Key, which resumes here) settles it there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import structlog

from paygate import crashpoints
from paygate.acquirers.base import UNKNOWN, AcquirerResult, NotSent, OutcomeUnknown, Unavailable
from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.domain.payments import Status
from paygate.services import acquirer_health
from paygate.services.gateway import Gateway, Outcome, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.services.settle import plan_authorization, settle
from paygate.store import bank_ops, outcomes, payments
from paygate.store.db import Conn, Row, pipelined

log = structlog.get_logger("paygate.authorize")

# How long the recovery worker leaves a fresh intent to the request that made it (also services/payments.py).
RECOVERY_GRACE_S = 20.0

# The bank's only "I certainly did nothing" answer; every other failure code is the card's answer and final.
NOT_PROCESSED = "processing_error"

Verdict = Literal["succeeded", "declined", "unavailable", "unknown", "pending"]


@dataclass(frozen=True)
class Attempt:
    """What one acquirer made of the authorization: the health verdict and the answer to settle."""

    verdict: Verdict
    result: AcquirerResult


@dataclass(frozen=True)
class Request:
    """The authorization as every acquirer of the plan is asked it (the card is never stored)."""

    payment_id: str
    merchant_id: str
    amount: int
    currency: str
    payment_method: Mapping[str, Any]
    capture: bool
    is_card: bool
    # an authorization that carries no card (made with a customer authentication, services/authentication.py):
    # anyone may send its key again, so an answer that did not come is left to recovery, never concluded
    resendable: bool = False


def classify(result: AcquirerResult) -> Verdict:
    if result.outcome == "succeeded":
        return "succeeded"
    if result.outcome == "pending":
        return "pending"
    if result.outcome == "failed":
        # anything but processing_error is the card's answer (a decline): final, never retried elsewhere
        return "unavailable" if (result.failure_code or NOT_PROCESSED) == NOT_PROCESSED else "declined"
    return "unknown"


async def attempt(gw: Gateway, req: Request, acquirer: str, op_id: str, *, resumed: bool = False) -> Attempt:
    """Ask `acquirer` once (its client retries inside), and an inquiry if the answer was lost.

    `resumed`: the attempt was made by an earlier request (a crashed process, or one whose idempotency lease
    ran out while it still worked). Its key is then never SENT again, only inquired: `NotSent` proves only
    that *this* call never arrived, so if two requests could send one key, one's NotSent could move the
    payment on while the other's send is applied (found by the 2,000-payment drill). One sender per key
    — the request that created it — keeps every NotSent a certainty; everyone else asks (and fences)."""
    bank = gw.acquirer(acquirer)
    if resumed:
        try:
            return Attempt(classify(result := await bank.inquire(key=op_id)), result)
        except Unavailable as exc:
            log.warning("acquirer_inquiry_unanswered", acquirer=acquirer, op=op_id, detail=str(exc))
            return Attempt("unknown", UNKNOWN)
    try:
        result = await bank.authorize(
            key=op_id, reference=req.payment_id, amount=req.amount, currency=req.currency,
            payment_method=req.payment_method, capture=req.capture, callback_url=gw.callback_url(acquirer))
    except NotSent as exc:  # certainly never reached the bank: nothing can have been applied there
        log.warning("acquirer_not_sent", acquirer=acquirer, op=op_id, detail=str(exc))
        if req.resendable:  # this send did not arrive; another sender's may: recovery sends it again
            return Attempt("unknown", UNKNOWN)
        return Attempt("unavailable", AcquirerResult("failed", NOT_PROCESSED))
    except OutcomeUnknown as exc:
        log.warning("acquirer_outcome_unknown", acquirer=acquirer, op=op_id, detail=str(exc))
        # a UPI collect waits for its callback anyway, a resendable one for recovery: it stays with this acquirer
        if not req.is_card or req.resendable:
            return Attempt("unknown", UNKNOWN)
        crashpoints.reach("before_failover_inquiry")
        try:
            # the inquiry also fences the key: a late arrival of the original can never act (decision 0003)
            result = await bank.inquire(key=op_id)
        except Unavailable as again:
            log.warning("acquirer_inquiry_unanswered", acquirer=acquirer, op=op_id, detail=str(again))
            return Attempt("unknown", UNKNOWN)
    return Attempt(classify(result), result)


def _appended(p: Row, acquirer: str, a: Attempt, at: Any) -> list[dict[str, Any]]:
    code = a.result.failure_code if a.verdict in ("declined", "unavailable") else None
    return [*(p.get("acquirer_attempts") or []),
            {"acquirer": acquirer, "result": a.verdict, "failure_code": code, "at": views.ts(at)}]


async def _record_health(conn: Conn, gw: Gateway, p: Row, acquirer: str, a: Attempt, now: Any) -> dict[str, Any]:
    """The attempt in the health record (feeds the breaker), in the caller's transaction; returns the payment's
    fields that record it (`acquirer_attempts`), for the caller to write with its own UPDATE of the payment."""
    if a.verdict == "pending":  # an answer, not yet a result: the callback decides (nothing to count yet)
        return {}
    code = a.result.failure_code if a.verdict in ("declined", "unavailable") else None
    await acquirer_health.record_attempt(conn, gw, payment_id=p["id"], merchant_id=p["merchant_id"],
                                         acquirer=acquirer, result=a.verdict, failure_code=code, at=now)
    return {"acquirer_attempts": _appended(p, acquirer, a, now)}


async def move_on(gw: Gateway, op_id: str, acquirer: str, a: Attempt, nxt: str, *, kind: str = "authorization",
                  waiting: Status = Status.PENDING) -> str | None:
    """Close the certainly-failed attempt and open the next one (an operation of `kind` at `nxt`), in one
    transaction; the payment's acquirer becomes `nxt`, the attempt is recorded for health and on the payment.
    The new operation's id, or None when the payment (expected `waiting`) is no longer this request's to move
    (recovery settled it meanwhile). services/authentication.py moves an unsent authentication on with it."""
    async with pipelined(gw.pool) as conn:
        now = utcnow()
        p, op = await bank_ops.lock_with_payment(conn, op_id)
        if op["status"] != "pending" or p["status"] != waiting or p["acquirer"] != acquirer:
            return None  # another request or recovery moved it meanwhile: not this request's to move
        await bank_ops.resolve(conn, op_id, "failed", NOT_PROCESSED, now)
        attempted = await _record_health(conn, gw, p, acquirer, a, now)
        new_op = new_id("bop")
        await bank_ops.insert(conn, id=new_op, merchant_id=p["merchant_id"], payment_id=p["id"],
                              kind=kind, amount=op["amount"], acquirer=nxt,
                              next_attempt_at=now + timedelta(seconds=RECOVERY_GRACE_S))
        await payments.update(conn, p, {**attempted, "acquirer": nxt, "updated_at": now})  # one UPDATE for both
    log.info("failover", payment=p["id"], kind=kind, from_acquirer=acquirer, to_acquirer=nxt)
    return new_op


# Work of the caller's in the transaction that settles a successful answer, before it is settled (e.g. saving
# the card: services/saved_methods.py): (connection, operation id, outcome) -> the payment as it left it when
# it wrote to it (still locked), else None.
BeforeSettle = Callable[[Conn, str, str], Awaitable[Row | None]]


async def _conclude_at_once(gw: Gateway, key: KeyHandle, committed: Row, op_id: str, acquirer: str,
                            a: Attempt) -> Outcome | None:
    """The common outcome — a card's answer, at a healthy acquirer, for the payment this request committed
    — in one statement on an autocommit connection, instead of `_conclude`'s transaction (lock, attempt,
    payment and operation, event, journal, key: docs/decisions/0026). The transition is computed here as
    settle computes it; the database applies it only if the payment and its operation are still as this
    request committed them and the breaker needs no write. None: nothing was written (something else
    moved them, or the case is not covered): the caller concludes the ordinary way."""
    from paygate.services.payments import render  # one rendering of a create answer (payments imports us)

    # key.fresh: a key whose row this request has not written (never so after payments._card_intent, which
    # writes it with the intent; kept so that the function's key update can never miss its row)
    if a.verdict not in ("succeeded", "declined") or key.fresh:
        return None
    now = utcnow()
    r = a.result
    planned = plan_authorization(gw, committed, op_id, acquirer, r.outcome, r.failure_code, now, r.operation_id,
                                 r.capture_id, {"acquirer_attempts": _appended(committed, acquirer, a, now)})
    if planned is None:
        return None
    outcome = render(planned.row)
    async with gw.pool.connection() as conn:
        done = await outcomes.conclude_authorization(
            conn, was=committed, acquirer=acquirer, result=a.verdict,
            attempt_code=r.failure_code if a.verdict == "declined" else None, now=now,
            resolution=planned.resolution, row=planned.row, event_type=planned.event_type,
            event_data=views.payment(planned.row), journal=planned.journal,
            key=(key.merchant_id, key.key) if key.key is not None else None, response=(outcome.status, outcome.body))
    if not done:
        log.info("outcome_stale", payment=committed["id"], op=op_id)
        return None
    return outcome


async def _conclude(gw: Gateway, key: KeyHandle, op_id: str, acquirer: str, a: Attempt,
                    before_settle: BeforeSettle | None = None, resendable: bool = False,
                    committed: Row | None = None) -> Outcome:
    from paygate.services.payments import render  # one rendering of a create answer (payments imports us)

    if committed is not None and not resendable:
        at_once = await _conclude_at_once(gw, key, committed, op_id, acquirer, a)
        if at_once is not None:
            return at_once
    async with pipelined(gw.pool) as conn:
        now = utcnow()
        p, op = await bank_ops.lock_with_payment(conn, op_id)
        # a resendable one's unknown is re-sent by every recovery pass: counting each would be one attempt and
        # one breaker failure per pass for a single lost answer (ordinary recovery only inquires: neither)
        if op["status"] == "pending" and not (resendable and a.verdict == "unknown"):
            attempted = await _record_health(conn, gw, p, acquirer, a, now)
            r = a.result
            if a.verdict in ("succeeded", "declined", "unavailable"):  # unavailable here: the last one
                if before_settle is not None:
                    p = await before_settle(conn, op_id, r.outcome) or p
                # the pair locked above (the payment as before_settle left it): settle reads neither again, and
                # writes the attempt with the outcome in one UPDATE of the payment
                p = await settle(conn, gw, op_id, r.outcome, r.failure_code, now, r.operation_id, r.capture_id,
                                 locked=(p, op), also=attempted)
            elif attempted:
                p = await payments.update(conn, p, attempted)
        outcome = render(p)
        await key.finish(conn, outcome)
        return outcome


async def run(gw: Gateway, key: KeyHandle, req: Request, acquirer: str, op_id: str, rest: list[str], *,
              resumed: bool = False, before_settle: BeforeSettle | None = None,
              committed: Row | None = None) -> Outcome:
    """Authorize at `acquirer` (intent `op_id` already committed), failing over along `rest`. `resumed`: the
    intent was written by an earlier request, so it is only inquired (see `attempt`). `committed`: the
    payment row exactly as this request committed it with the intent, when `before_settle` would do nothing
    for it (no card to save): its outcome may then be one statement (`_conclude_at_once`)."""
    rest = list(rest)
    if resumed:
        committed = None
    while True:
        a = await attempt(gw, req, acquirer, op_id, resumed=resumed)
        resumed = False  # every later attempt is this request's own: it alone sends that key
        crashpoints.reach("after_bank_authorize")
        if a.verdict != "unavailable" or not rest:
            return await _conclude(gw, key, op_id, acquirer, a, before_settle, req.resendable, committed)
        committed = None  # the payment moves on: the row as committed is no longer the row as it is
        nxt = rest.pop(0)
        moved = await move_on(gw, op_id, acquirer, a, nxt)
        if moved is None:
            return await _conclude(gw, key, op_id, acquirer, Attempt("unknown", UNKNOWN))
        crashpoints.reach("after_failover_intent")  # the next attempt's intent is committed, not yet sent
        acquirer, op_id = nxt, moved
