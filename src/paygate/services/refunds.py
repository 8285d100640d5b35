"""Refunds: the amount is reserved on the payment under its row lock before the bank is asked, so any
number of concurrent refunds can never sum to more than was captured."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from paygate import crashpoints
from paygate.domain import views
from paygate.domain.ids import new_id
from paygate.domain.payments import REFUNDABLE, Status, refundable_remaining
from paygate.errors import InvalidState, NotFound
from paygate.services.acquiring import ask
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.services.payments import RECOVERY_GRACE_S
from paygate.services.settle import settle
from paygate.store import bank_ops, payments, refunds
from paygate.store.db import pipelined


async def create(
    gw: Gateway, who: Principal, *, payment_id: str, amount: int | None, reason: str | None,
    metadata: dict[str, str], key: KeyHandle,
) -> Outcome:
    if key.resource_id is None:
        now = utcnow()
        refund_id, op_id = new_id("ref"), new_id("bop")
        async with pipelined(gw.pool) as conn:
            p = await payments.lock(conn, payment_id, who.merchant_id)
            if p is None:
                raise NotFound("payment", payment_id, param="payment_id")
            status = Status(p["status"])
            if status in (Status.CAPTURING, Status.VOIDING):
                raise InvalidState("payment_in_flight",
                                   f"Payment {payment_id} has an operation in progress; retry shortly.", retry_after=1)
            if status not in REFUNDABLE and status is not Status.REFUNDED:  # refunded: nothing remains (below)
                raise InvalidState("payment_not_refundable",
                                   f"Payment {payment_id} is {status.value}; only captured payments can be refunded.")
            remaining = refundable_remaining(p["amount_captured"], p["amount_refunded"], p["amount_refund_reserved"])
            remaining -= p.get("amount_disputed", 0)  # open and lost disputes are not refundable (§17)
            refund_amount = remaining if amount is None else amount
            if remaining <= 0 or refund_amount > remaining:
                raise InvalidState("amount_exceeds_refundable",
                                   f"The refund would exceed what remains refundable ({remaining}).")
            reserved = p["amount_refund_reserved"] + refund_amount
            await payments.update(conn, p, {"amount_refund_reserved": reserved, "updated_at": now})
            await refunds.insert(conn, {
                "id": refund_id, "merchant_id": who.merchant_id, "payment_id": payment_id, "amount": refund_amount,
                "currency": p["currency"], "status": "pending", "reason": reason, "metadata": metadata,
                "created_at": now, "updated_at": now,
            })
            await bank_ops.insert(conn, id=op_id, merchant_id=who.merchant_id, payment_id=payment_id,
                                  refund_id=refund_id, kind="refund", amount=refund_amount, acquirer=p["acquirer"],
                                  next_attempt_at=now + timedelta(seconds=RECOVERY_GRACE_S))
            await key.checkpoint(conn, "refund_created", refund_id)
            acquirer = p["acquirer"]
    else:
        refund_id = key.resource_id
        async with gw.pool.connection() as conn:
            op = await bank_ops.for_refund(conn, refund_id)
        assert op is not None
        op_id, refund_amount, acquirer = op["id"], op["amount"], op["acquirer"]

    bank = gw.acquirer(acquirer)  # the payment's own acquirer, always (§14)
    result = await ask(bank.refund(key=op_id, reference=payment_id, amount=refund_amount))
    crashpoints.reach("after_bank_refund")
    async with pipelined(gw.pool) as conn:
        await settle(conn, gw, op_id, result.outcome, result.failure_code, utcnow(), result.operation_id)
        r = await refunds.get(conn, who.merchant_id, refund_id)
        assert r is not None
        outcome = Outcome.of(201, views.refund(r))
        await key.finish(conn, outcome)
        return outcome


async def retrieve(gw: Gateway, who: Principal, refund_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        r = await refunds.get(conn, who.merchant_id, refund_id)
    if r is None:
        raise NotFound("refund", refund_id)
    return views.refund(r)
