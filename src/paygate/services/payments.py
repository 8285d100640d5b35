"""Payment use cases: create (authorize), capture, void. Each is three short phases around one bank call:

    1. commit the intent (payment `pending`/`capturing`/`voiding` + a bank-operation row + key checkpoint)
    2. call the bank with the operation's id as its Idempotency-Key (retried inside the client); for an
       authorization this is services/authorize.py, which fails over along the merchant's routing (§14)
    3. commit the outcome through `settle`, with the response stored on the idempotency key

A crash between 1 and 3 leaves the intent for the retry with the same key, or for the recovery worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from paygate import crashpoints
from paygate.acquirers.base import AcquirerResult
from paygate.domain import authentication as auth_rules
from paygate.domain import cards, views
from paygate.domain.ids import new_id
from paygate.domain.payments import Status
from paygate.domain.routing import Facts
from paygate.errors import CardError, InvalidRequest, InvalidState, NotFound, RateLimited
from paygate.services import authentication, authorize, routing, saved_methods
from paygate.services.acquiring import ask
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.services.settle import FAILURE_MESSAGES, emit, fail, move, settle
from paygate.store import bank_ops, intents, orders, payments
from paygate.store.db import Conn, Row, pipelined

# How long the recovery worker leaves a fresh intent to the request that made it.
RECOVERY_GRACE_S = authorize.RECOVERY_GRACE_S


@dataclass
class NewPayment:
    payment_method: dict[str, Any] | str  # as received: may hold the full card number and CVC (never stored);
    # or a saved method's pm_ id (§16, services/saved_methods.py)
    amount: int | None = None
    currency: str | None = None
    capture_method: str = "automatic"
    order_id: str | None = None
    customer_id: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    receipt_email: str | None = None
    customer: str | None = None  # a cus_ id (§16)
    save_payment_method: bool = False
    off_session: bool = False
    return_url: str | None = None  # §15: where the browser goes after a challenge


def render(p: Row) -> Outcome:
    """A payment as the answer to its create request: 201, or 402 with the failed payment."""
    obj = views.payment(p)
    if p["status"] == Status.FAILED:
        code = p["failure_code"] or "processing_error"
        err = CardError(code, p["failure_message"] or FAILURE_MESSAGES.get(code, "The payment failed."),
                        extra={"payment": obj})
        return Outcome.of(402, err.body())
    return Outcome.of(201, obj)


def _in_flight(p: Row) -> InvalidState:
    return InvalidState("payment_in_flight", f"Payment {p['id']} has an operation in progress; retry shortly.",
                        retry_after=1)


def _for_bank(pm: dict[str, Any]) -> dict[str, Any]:
    """What the acquirer needs of a method, and nothing more (a card's `name` stays with us)."""
    if pm["type"] == "card":
        c = pm["card"]
        # a saved card has no CVC (§16)
        return {"type": "card", "card": {k: c[k] for k in ("number", "exp_month", "exp_year", "cvc") if k in c}}
    return {"type": "upi", "upi": {"vpa": pm["upi"]["vpa"]}}


def too_many_attempts(order_id: str) -> RateLimited:
    """An order that has used up its failed payments (card testing: one order id must not be an unlimited
    oracle for stolen cards). No Retry-After: waiting does not help, a new order does. Not stored under the
    Idempotency-Key: like every 429 it is a refusal, made before anything is done (decision 0013)."""
    return RateLimited("too_many_attempts", f"Order {order_id} has had too many failed payments and accepts no more; "
                       "create a new order.")


async def _resolve_amount(conn: Conn, who: Principal, req: NewPayment, max_failed: int) -> tuple[int, str, Row | None]:
    order = None
    if req.order_id is not None:
        # The order's row lock serialises its payments: at most one may be taking money at a time, so the
        # failures counted here cannot grow until this transaction ends.
        order = await orders.lock(conn, who.merchant_id, req.order_id)
        if order is None:
            raise NotFound("order", req.order_id, param="order_id")
        if order["status"] == "paid":
            raise InvalidState("order_already_paid", f"Order {order['id']} is already paid.")
        if await orders.failed_payments(conn, order["id"]) >= max_failed:
            raise too_many_attempts(order["id"])
        # a payment still waiting for its customer's challenge holds nothing: a new attempt (the customer
        # gave up on it, and pays again) supersedes it, so that it can never be paid twice (§15)
        for waiting in await orders.awaiting_authentication(conn, order["id"]):
            stale = await payments.lock(conn, waiting)
            if stale is not None and stale["status"] == Status.REQUIRES_ACTION:
                await authentication.close(conn, stale, Status.VOIDED, None, utcnow())
        busy = await orders.payment_in_progress(conn, order["id"])
        if busy is not None:
            raise InvalidState("order_payment_in_progress",
                               f"Payment {busy} for order {order['id']} is still in progress.", retry_after=1)
        if req.amount is not None and req.amount != order["amount"]:
            raise InvalidRequest("parameter_invalid", "amount must equal the order's amount.", param="amount")
        if req.currency is not None and req.currency != order["currency"]:
            raise InvalidRequest("parameter_invalid", "currency must equal the order's currency.", param="currency")
        return order["amount"], order["currency"], order
    return (*_amount(req), None)


def _amount(req: NewPayment) -> tuple[int, str]:
    """A payment without an order: its own amount and currency, both required."""
    if req.amount is None:
        raise InvalidRequest("parameter_missing", "amount is required.", param="amount")
    if req.currency is None:
        raise InvalidRequest("parameter_missing", "currency is required.", param="currency")
    return req.amount, req.currency


async def _facts(gw: Gateway, who: Principal, req: NewPayment, pm: Mapping[str, Any]) -> Facts:
    """What routing may look at, read before the intent's transaction: `routing.plan` uses connections of
    its own, which must not be waited for while holding one (and the order's lock)."""
    amount, currency = req.amount, req.currency
    if req.order_id is not None and (amount is None or currency is None):
        async with gw.pool.connection() as conn:
            order = await orders.get(conn, who.merchant_id, req.order_id)
        if order is not None:  # a missing order is refused by _resolve_amount, under its lock
            amount, currency = order["amount"], order["currency"]
    brand = cards.brand(pm["card"]["number"]) if pm["type"] == "card" else None  # the resolved method
    return Facts(amount=amount or 0, currency=(currency or "").upper(), method=pm["type"], card_brand=brand)


def _values(gw: Gateway, who: Principal, req: NewPayment, resolved: saved_methods.Resolved, payment_id: str,
            amount: int, currency: str, now: datetime, status: Status, acquirer: str | None) -> dict[str, Any]:
    """The new payment's row. `acquirer`: where the first attempt goes, recorded with the payment and its
    intent in one transaction (None: no attempt, the card is expired)."""
    is_card = resolved.method["type"] == "card"
    return {
        "id": payment_id, "merchant_id": who.merchant_id, "status": status.value, "amount": amount,
        "currency": currency, "capture_method": req.capture_method if is_card else "automatic",
        "method_type": resolved.method["type"],
        "payment_method": saved_methods.public_method(resolved, gw.settings.fingerprint_key),
        "order_id": req.order_id, "customer_id": req.customer_id, "description": req.description,
        "metadata": req.metadata, "status_history": [{"status": status.value, "at": views.ts(now)}],
        "created_at": now, "updated_at": now, "receipt_email": req.receipt_email,
        "customer": resolved.customer, "return_url": req.return_url, "acquirer": acquirer,
    }


async def _card_intent(gw: Gateway, key: KeyHandle, values: dict[str, Any], op_id: str, now: datetime) -> Row:
    """The common intent — a card, no order, no challenge — as one statement, its own transaction: the key's
    row (inserted or checkpointed), the payment and its authorization's operation, all or nothing, as the
    pipelined transaction of `_intent` writes them (decision 0025). A concurrent duplicate fails this
    statement on the key's primary key (`idempotency.execute` starts it over); a crash before it returns
    leaves nothing or everything committed: the retry starts afresh, or resumes at `payment_created`, or the
    recovery worker finds the operation. Returns the payment as committed."""
    payment_id = values["id"]
    payment, row = payments.insert_write(values)
    operation = bank_ops.insert_write(id=op_id, merchant_id=values["merchant_id"], payment_id=payment_id,
                                      kind="authorization", amount=values["amount"], acquirer=values["acquirer"],
                                      next_attempt_at=now + timedelta(seconds=RECOVERY_GRACE_S))
    checkpoint = key.checkpoint_write("payment_created", payment_id)
    async with gw.pool.connection() as conn:
        await intents.commit(conn, [payment, operation] if checkpoint is None else [checkpoint, payment, operation])
    key.checkpointed("payment_created", payment_id)
    return row


async def _intent(gw: Gateway, who: Principal, req: NewPayment, resolved: saved_methods.Resolved, key: KeyHandle,
                  plan: list[str], payment_id: str, op_id: str, now: datetime, *, challenge: bool,
                  expired: bool) -> tuple[int, str, str] | Outcome:
    """Every other intent, in one pipelined transaction: an order's payment (under the order's lock), a
    challenge, UPI (its `payment.pending` event) — or an expired card, failed here: its answer."""
    is_card = resolved.method["type"] == "card"
    async with pipelined(gw.pool) as conn:
        amount, currency, order = await _resolve_amount(conn, who, req, gw.settings.order_max_failed_payments)
        status = Status.REQUIRES_ACTION if challenge and not expired else Status.PENDING
        acquirer = None if expired else plan[0]
        p = await payments.insert(conn, _values(gw, who, req, resolved, payment_id, amount, currency, now, status,
                                                acquirer))
        if order is not None:
            await orders.mark_attempted(conn, order["id"], now)
        if expired:  # no need to ask the bank: the card cannot be charged
            p = await fail(conn, p, "expired_card", now)
            outcome = render(p)
            await key.finish(conn, outcome)
            return outcome
        assert acquirer is not None
        await bank_ops.insert(conn, id=op_id, merchant_id=who.merchant_id, payment_id=payment_id,
                              kind="authentication" if challenge else "authorization", amount=amount,
                              acquirer=acquirer, next_attempt_at=now + timedelta(seconds=RECOVERY_GRACE_S))
        if challenge:  # the acquirer that authenticates is the one that will authorize (decision 0018)
            await saved_methods.hold_for_challenge(conn, gw, resolved, payment_id, who.merchant_id, now)
            await key.checkpoint(conn, authentication.CHECKPOINT, payment_id)
        if not is_card:  # UPI waits for the customer: its `pending` is an observable state
            await emit(conn, who.merchant_id, "payment.pending", views.payment(p), now)
        if not challenge:
            await key.checkpoint(conn, "payment_created", payment_id)
    return amount, currency, acquirer


async def create(gw: Gateway, who: Principal, req: NewPayment, key: KeyHandle) -> Outcome:
    resolved = await saved_methods.resolve(gw, who, payment_method=req.payment_method, customer=req.customer,
                                           save=req.save_payment_method, off_session=req.off_session,
                                           order_id=req.order_id)
    pm = resolved.method
    is_card = pm["type"] == "card"
    resumed = key.resource_id is not None  # before `checkpoint` sets it
    if resumed and key.recovery_point == authentication.CHECKPOINT:
        assert key.resource_id is not None
        return await authentication.resume(gw, key, key.resource_id)
    # §15: an enrolled card is authenticated by its customer first — on-session, saved or not; off-session (no
    # customer present, a saved card, §16) it needs none: the bank takes a stored card's charge as it is
    challenge = is_card and not resolved.off_session and auth_rules.requires_authentication(pm["card"]["number"])
    committed: Row | None = None  # the payment as committed with its intent, for authorize.run (decision 0026)
    if not resumed:
        plan = await routing.plan(gw, who.merchant_id, await _facts(gw, who, req, pm))
        now = utcnow()
        payment_id, op_id = new_id("pay"), new_id("bop")
        expired = is_card and cards.is_expired(pm["card"]["exp_month"], pm["card"]["exp_year"], now)
        if is_card and req.order_id is None and not challenge and not expired:  # the common case (decision 0025)
            amount, currency = _amount(req)
            acquirer = plan[0]
            p = await _card_intent(gw, key, _values(gw, who, req, resolved, payment_id, amount, currency, now,
                                                    Status.PENDING, acquirer), op_id, now)
            committed = None if resolved.save else p  # saving the card keeps the ordinary outcome (decision 0026)
        else:
            begun = await _intent(gw, who, req, resolved, key, plan, payment_id, op_id, now, challenge=challenge,
                                  expired=expired)
            if isinstance(begun, Outcome):  # an expired card: failed without asking the bank
                return begun
            amount, currency, acquirer = begun
        if challenge:
            return await authentication.begin(gw, key, payment_id=payment_id, op_id=op_id, acquirer=acquirer,
                                              amount=amount, currency=currency, payment_method=_for_bank(pm),
                                              rest=plan[1:])
        rest = plan[1:]
    else:
        # A retry with the same key resumes the failover where it stands: the latest attempt is INQUIRED (a
        # fence; never sent again — its creator may still be sending it), then only acquirers not yet tried.
        # Never a new acquirer while the latest attempt is not certainly failed.
        assert key.resource_id is not None
        payment_id = key.resource_id
        async with gw.pool.connection() as conn:
            p0 = await payments.get(conn, who.merchant_id, payment_id)
            op = await bank_ops.pending_for_payment(conn, payment_id, "authorization")
            tried = await bank_ops.acquirers_tried(conn, payment_id)
        assert p0 is not None and op is not None
        if op["status"] != "pending":  # settled meanwhile (recovery or callback): answer what happened
            return await _finish(gw, key, payment_id)
        op_id, amount, currency, acquirer = op["id"], p0["amount"], p0["currency"], op["acquirer"]
        plan = await routing.plan(gw, who.merchant_id, await _facts(gw, who, req, pm))
        rest = [name for name in plan if name not in tried]

    request = authorize.Request(
        payment_id=payment_id, merchant_id=who.merchant_id, amount=amount, currency=currency,
        payment_method=_for_bank(pm), capture=(req.capture_method == "automatic") or not is_card, is_card=is_card)
    return await authorize.run(
        gw, key, request, acquirer, op_id, rest, resumed=resumed, committed=committed,
        before_settle=lambda conn, op, outcome: saved_methods.save_on_success(conn, gw, resolved, op, outcome))


async def _finish(gw: Gateway, key: KeyHandle, payment_id: str, op_id: str | None = None,
                  result: AcquirerResult | None = None, resolved: saved_methods.Resolved | None = None) -> Outcome:
    async with pipelined(gw.pool) as conn:
        now = utcnow()
        if op_id is not None and result is not None and result.outcome in ("succeeded", "failed"):
            await saved_methods.save_on_success(conn, gw, resolved, op_id, result.outcome)
            p = await settle(conn, gw, op_id, result.outcome, result.failure_code, now, result.operation_id,
                             result.capture_id)
        else:
            locked = await payments.lock(conn, payment_id)
            assert locked is not None
            p = locked
        outcome = render(p)
        await key.finish(conn, outcome)
        return outcome


async def _begin_operation(
    gw: Gateway, who: Principal, payment_id: str, key: KeyHandle, kind: str, amount: int | None,
) -> tuple[str, int, str] | Outcome:
    """Phase 1 of capture/void: check the state under the row lock and commit the intent."""
    now = utcnow()
    async with pipelined(gw.pool) as conn:
        p = await payments.lock(conn, payment_id, who.merchant_id)
        if p is None:
            raise NotFound("payment", payment_id)
        status = Status(p["status"])
        if status in (Status.CAPTURING, Status.VOIDING):
            raise _in_flight(p)
        if status is Status.REQUIRES_ACTION and kind == "void":  # nothing held: voided here, no bank call (§15)
            p = await authentication.close(conn, p, Status.VOIDED, None, now)
            outcome = Outcome.of(200, views.payment(p))
            await key.finish(conn, outcome)
            return outcome
        if status is not Status.AUTHORIZED:
            verb = "captured" if kind == "capture" else "voided"
            raise InvalidState(f"payment_not_{'capturable' if kind == 'capture' else 'voidable'}",
                               f"Payment {payment_id} is {status.value} and cannot be {verb}.")
        op_amount = p["amount"]
        if kind == "capture" and amount is not None:
            if amount > p["amount"]:
                raise InvalidState("amount_exceeds_capturable",
                                   f"amount {amount} exceeds amount_capturable {p['amount']}.")
            op_amount = amount
        await move(conn, p, Status.CAPTURING if kind == "capture" else Status.VOIDING, now)
        op_id = new_id("bop")
        await bank_ops.insert(conn, id=op_id, merchant_id=who.merchant_id, payment_id=payment_id, kind=kind,
                              amount=op_amount, acquirer=p["acquirer"],
                              next_attempt_at=now + timedelta(seconds=RECOVERY_GRACE_S))
        await key.checkpoint(conn, f"{kind}_started", op_id)
    return op_id, op_amount, p["acquirer"]


async def _operate(gw: Gateway, who: Principal, payment_id: str, key: KeyHandle, kind: str,
                   amount: int | None) -> Outcome:
    if key.resource_id is None:
        begun = await _begin_operation(gw, who, payment_id, key, kind, amount)
        if isinstance(begun, Outcome):  # finished without the bank
            return begun
        op_id, op_amount, acquirer = begun
    else:
        op_id = key.resource_id
        async with gw.pool.connection() as conn:
            op = await bank_ops.get(conn, op_id)
        assert op is not None
        op_amount, acquirer = op["amount"], op["acquirer"]
    bank = gw.acquirer(acquirer)  # the payment's own acquirer, always (§14)
    if kind == "capture":
        result = await ask(bank.capture(key=op_id, reference=payment_id, amount=op_amount))
    else:
        result = await ask(bank.void(key=op_id, reference=payment_id))
    crashpoints.reach(f"after_bank_{kind}")
    async with pipelined(gw.pool) as conn:
        now = utcnow()
        p = await settle(conn, gw, op_id, result.outcome, result.failure_code, now, result.operation_id)
        outcome = Outcome.of(200, views.payment(p))
        await key.finish(conn, outcome)
        return outcome


async def capture(gw: Gateway, who: Principal, payment_id: str, amount: int | None, key: KeyHandle) -> Outcome:
    return await _operate(gw, who, payment_id, key, "capture", amount)


async def void(gw: Gateway, who: Principal, payment_id: str, key: KeyHandle) -> Outcome:
    return await _operate(gw, who, payment_id, key, "void", None)


async def retrieve(gw: Gateway, who: Principal, payment_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        p = await payments.get(conn, who.merchant_id, payment_id)
    if p is None:
        raise NotFound("payment", payment_id)
    return views.payment(p)

