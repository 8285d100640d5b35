"""The payment use cases against in-memory acquirers (acquirers/memory.py): no bank process, the real
PostgreSQL store. Every outcome an acquirer can give an authorization, and where capture, void, refunds,
recovery and callbacks go (always the payment's own acquirer, API.md §14)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from paygate.acquirers.base import Callback, OpKind
from paygate.acquirers.memory import Behaviour, MemoryAcquirer
from paygate.bootstrap import build_gateway
from paygate.domain.ids import new_id
from paygate.services import bank_events, payments, refunds
from paygate.services.gateway import Gateway, Principal
from paygate.services.idempotency import KeyHandle
from paygate.services.payments import NewPayment
from paygate.store.db import Row, fetch_all, fetch_one
from paygate.worker import recovery

CARD: dict[str, Any] = {"type": "card", "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030,
                                                 "cvc": "123"}}
UPI: dict[str, Any] = {"type": "upi", "upi": {"vpa": "success@upi"}}




def no_key(who: Principal) -> KeyHandle:
    return KeyHandle(who.merchant_id, None)


async def pay(gw: Gateway, who: Principal, method: dict[str, Any] | None = None, capture_method: str = "automatic",
              amount: int = 1_000) -> tuple[int, dict[str, Any]]:
    out = await payments.create(gw, who, NewPayment(payment_method=method or CARD, amount=amount, currency="USD",
                                                    capture_method=capture_method), no_key(who))
    body: dict[str, Any] = orjson.loads(out.body)
    return out.status, body.get("error", {}).get("payment", body)


async def ops(gw: Gateway, payment_id: str) -> list[Row]:
    async with gw.pool.connection() as conn:
        return await fetch_all(conn, "SELECT kind, status, acquirer, acquirer_reference, failure_code"
                                     " FROM bank_operations WHERE payment_id = %s ORDER BY created_at, id",
                               (payment_id,))


async def recover_now(gw: Gateway) -> int:
    """Make every pending operation due (instead of waiting out the grace period), then one pass."""
    async with gw.pool.connection() as conn:
        await conn.execute("UPDATE bank_operations SET next_attempt_at = now() WHERE status = 'pending'")
    return await recovery.recover_once(gw)


def methods(acq: MemoryAcquirer) -> list[str]:
    return [c.method for c in acq.calls]


async def test_approved_goes_to_the_first_acquirer_and_records_the_banks_id(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    status, p = await pay(gw, who)
    assert (status, p["status"], p["acquirer"]) == (201, "captured", "alpha")
    assert methods(alpha) == ["authorize"] and beta.calls == []
    [op] = await ops(gw, p["id"])
    assert (op["acquirer"], op["status"]) == ("alpha", "succeeded")
    assert op["acquirer_reference"] is not None and op["acquirer_reference"].startswith("mop_")


async def test_a_decline_is_final_and_holds_nothing(gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.DECLINE)
    status, p = await pay(gw, who)
    assert (status, p["status"], p["failure_code"], p["acquirer"]) == (402, "failed", "card_declined", None)
    assert methods(alpha) == ["authorize"]  # no inquiry after a final answer


@pytest.mark.parametrize("behaviour", [Behaviour.REFUSE, Behaviour.ERROR_NOT_APPLIED])
async def test_nothing_applied_anywhere_fails_with_processing_error(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer, behaviour: Behaviour) -> None:
    alpha.script(OpKind.AUTHORIZATION, behaviour)
    beta.script(OpKind.AUTHORIZATION, behaviour)
    status, p = await pay(gw, who)
    assert (status, p["status"], p["failure_code"], p["acquirer"]) == (402, "failed", "processing_error", None)
    asked = ["authorize", "inquire"] if behaviour is Behaviour.ERROR_NOT_APPLIED else ["authorize"]
    assert methods(alpha) == asked and methods(beta) == asked
    assert alpha.operations(p["id"]) == [] and beta.operations(p["id"]) == [] and alpha.held == beta.held == {}
    assert [(a["acquirer"], a["result"], a["failure_code"]) for a in p["acquirer_attempts"]] == [
        ("alpha", "unavailable", "processing_error"), ("beta", "unavailable", "processing_error")]
    assert [(op["acquirer"], op["status"]) for op in await ops(gw, p["id"])] == [
        ("alpha", "failed"), ("beta", "failed")]  # no attempt's operation is ever left pending


@pytest.mark.parametrize("behaviour", [Behaviour.ERROR_APPLIED, Behaviour.TIMEOUT_INQUIRY_APPLIED])
async def test_applied_but_unanswered_is_learned_by_inquiry(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, behaviour: Behaviour) -> None:
    alpha.script(OpKind.AUTHORIZATION, behaviour)
    status, p = await pay(gw, who, capture_method="manual")
    assert (status, p["status"], p["acquirer"]) == (201, "authorized", "alpha")
    assert methods(alpha) == ["authorize", "inquire"]
    assert alpha.held == {p["id"]: 1_000}


async def test_unknown_stays_pending_at_its_acquirer_and_recovery_settles_it_there(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.TIMEOUT_INQUIRY_UNKNOWN)
    status, p = await pay(gw, who)
    assert (status, p["status"], p["acquirer"]) == (201, "pending", "alpha")
    assert await recover_now(gw) == 0  # inquiries still unanswered: it waits, and never goes elsewhere
    alpha.heal()
    assert await recover_now(gw) == 1
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT status, acquirer FROM payments WHERE id = %s", (p["id"],))
    assert row == {"status": "captured", "acquirer": "alpha"}
    assert beta.calls == []


async def test_capture_void_and_refund_go_to_the_payments_acquirer_whatever_the_order_now(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    _, held = await pay(gw, who, capture_method="manual")
    _, voidable = await pay(gw, who, capture_method="manual")
    # the operator now lists beta first: new payments would go there, these two stay at alpha
    reordered = build_gateway(gw.settings, gw.pool, {"beta": beta, "alpha": alpha})
    captured = orjson.loads((await payments.capture(reordered, who, held["id"], 600, no_key(who))).body)
    assert (captured["status"], captured["amount_captured"], captured["acquirer"]) == ("captured", 600, "alpha")
    voided = orjson.loads((await payments.void(reordered, who, voidable["id"], no_key(who))).body)
    assert voided["status"] == "voided"
    refund = orjson.loads((await refunds.create(reordered, who, payment_id=held["id"], amount=100, reason=None,
                                                metadata={}, key=no_key(who))).body)
    assert refund["status"] == "succeeded"
    assert methods(alpha) == ["authorize", "authorize", "capture", "void", "refund"] and beta.calls == []
    assert {op["acquirer"] for op in await ops(gw, held["id"])} == {"alpha"}
    _, fresh = await pay(reordered, who)
    assert fresh["acquirer"] == "beta"


async def test_a_capture_applied_without_answer_is_finished_by_recovery_with_the_same_key(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    _, p = await pay(gw, who, capture_method="manual")
    alpha.script(OpKind.CAPTURE, Behaviour.ERROR_APPLIED)
    out = orjson.loads((await payments.capture(gw, who, p["id"], None, no_key(who))).body)
    assert out["status"] == "capturing"
    assert await recover_now(gw) == 1
    capture_keys = [c.key for c in alpha.calls if c.method == "capture"]
    assert len(capture_keys) == 2 and len(set(capture_keys)) == 1  # sent again with the same key: replayed
    assert [kind for kind, _ in alpha.operations(p["id"])] == [OpKind.AUTHORIZATION, OpKind.CAPTURE]
    assert [(op["kind"], op["status"]) for op in await ops(gw, p["id"])] == [
        ("authorization", "succeeded"), ("capture", "succeeded")]


def callback(acquirer: str, reference: str, amount: int, ok: bool = True) -> Callback:
    return Callback(acquirer=acquirer, id=new_id("bevt"), type="operation.succeeded" if ok else "operation.failed",
                    outcome="succeeded" if ok else "failed", reference=reference, operation="capture", amount=amount,
                    failure_code=None if ok else "payment_declined", body={"id": "x"})


async def test_a_callback_from_another_acquirer_is_recorded_and_ignored(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.PENDING)
    status, p = await pay(gw, who, method=UPI)
    assert (status, p["status"], p["acquirer"]) == (201, "pending", "alpha")
    stranger = await bank_events.receive(gw, callback("beta", p["id"], 1_000))
    assert (stranger.outcome, stranger.duplicate) == (bank_events.IGNORED, False)
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT b.outcome, b.detail, p.status FROM bank_events b, payments p"
                                    " WHERE b.id = %s AND p.id = %s", (stranger.event_id, p["id"]))
    assert row is not None and row["status"] == "pending" and row["outcome"] == "ignored"
    assert "beta" in row["detail"] and "alpha" in row["detail"]
    own = await bank_events.receive(gw, callback("alpha", p["id"], 1_000))
    assert own.outcome == bank_events.APPLIED
    async with gw.pool.connection() as conn:
        after = await fetch_one(conn, "SELECT status FROM payments WHERE id = %s", (p["id"],))
    assert after == {"status": "captured"}
