"""Failover (API.md §14, docs/decisions/0017) against two in-memory acquirers and the real store: every
branch of an authorization attempt, and what the payment shows of it (`acquirer`, `acquirer_attempts`,
`acquirer_references`). The invariant checked throughout: at most one acquirer ever holds the payment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from paygate.acquirers.base import AcquirerResult, Callback, OpKind
from paygate.acquirers.memory import Behaviour, MemoryAcquirer, Step
from paygate.bootstrap import build_gateway
from paygate.domain.ids import new_id
from paygate.services import acquirer_health, bank_events, payments, refunds
from paygate.services.gateway import Gateway, Principal
from paygate.services.idempotency import KeyHandle
from paygate.services.payments import NewPayment
from paygate.store.db import fetch_one
from tests.integration.test_payment_use_cases import CARD, methods, no_key, ops, pay, recover_now


def attempts(p: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(a["acquirer"], a["result"], a["failure_code"]) for a in p["acquirer_attempts"]]


def authorized_at(*banks: MemoryAcquirer, reference: str) -> list[str]:
    """Which banks hold a successful authorization for `reference` (their own records)."""
    return [b.name for b in banks for kind, status in b.operations(reference)
            if kind is OpKind.AUTHORIZATION and status == "succeeded"]


async def test_a_refused_connection_fails_over_to_beta(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE)
    status, p = await pay(gw, who, capture_method="manual")
    assert (status, p["status"], p["acquirer"]) == (201, "authorized", "beta")
    assert methods(alpha) == ["authorize"] and methods(beta) == ["authorize"]  # NotSent: no inquiry needed
    assert attempts(p) == [("alpha", "unavailable", "processing_error"), ("beta", "succeeded", None)]
    assert authorized_at(alpha, beta, reference=p["id"]) == ["beta"] and beta.held == {p["id"]: 1_000}
    rows = await ops(gw, p["id"])
    assert [(op["acquirer"], op["status"]) for op in rows] == [("alpha", "failed"), ("beta", "succeeded")]
    assert p["acquirer_references"] == {"authorization": rows[1]["acquirer_reference"], "capture": None,
                                        "void": None}


async def test_each_attempt_has_its_own_idempotency_key(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE)
    await pay(gw, who)
    assert alpha.calls[0].key != beta.calls[0].key


async def test_5xx_not_applied_is_fenced_by_the_inquiry_then_beta_authorizes(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.ERROR_NOT_APPLIED)
    status, p = await pay(gw, who)
    assert (status, p["status"], p["acquirer"]) == (201, "captured", "beta")
    assert methods(alpha) == ["authorize", "inquire"] and methods(beta) == ["authorize"]
    # the fence: alpha's key, arriving late, can no longer authorize anything there
    late = await alpha.authorize(key=alpha.calls[0].key, reference=p["id"], amount=1_000, currency="USD",
                                 payment_method=CARD, capture=True, callback_url=None)
    assert (late.outcome, late.failure_code) == ("failed", "processing_error")
    assert authorized_at(alpha, beta, reference=p["id"]) == ["beta"]
    assert attempts(p) == [("alpha", "unavailable", "processing_error"), ("beta", "succeeded", None)]


async def test_a_processing_error_answer_fails_over(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Step(Behaviour.DECLINE, "processing_error"))
    status, p = await pay(gw, who)
    assert (status, p["acquirer"]) == (201, "beta")
    assert methods(alpha) == ["authorize"] and methods(beta) == ["authorize"]


async def test_5xx_applied_is_held_by_alpha_and_beta_is_never_called(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.ERROR_APPLIED)
    status, p = await pay(gw, who, capture_method="manual")
    assert (status, p["status"], p["acquirer"]) == (201, "authorized", "alpha")
    assert methods(alpha) == ["authorize", "inquire"] and beta.calls == []
    assert attempts(p) == [("alpha", "succeeded", None)]


async def test_timeout_then_inquiry_applied_is_alphas(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.TIMEOUT_INQUIRY_APPLIED)
    status, p = await pay(gw, who)
    assert (status, p["status"], p["acquirer"]) == (201, "captured", "alpha")
    assert beta.calls == [] and authorized_at(alpha, beta, reference=p["id"]) == ["alpha"]
    refs = p["acquirer_references"]
    assert refs["authorization"] is not None and refs["capture"] is not None and refs["void"] is None


async def test_timeout_then_inquiry_unknown_stays_pending_at_alpha_until_recovery_settles_it_there(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.TIMEOUT_INQUIRY_UNKNOWN)
    status, p = await pay(gw, who, capture_method="manual")
    assert (status, p["status"], p["acquirer"]) == (201, "pending", "alpha")
    assert attempts(p) == [("alpha", "unknown", None)]
    assert await recover_now(gw) == 0  # still no answer: it waits at alpha
    assert beta.calls == []
    alpha.heal()
    assert await recover_now(gw) == 1
    got = orjson.loads(orjson.dumps(await payments.retrieve(gw, who, p["id"])))
    assert (got["status"], got["acquirer"]) == ("authorized", "alpha")
    assert got["acquirer_references"]["authorization"] is not None
    assert beta.calls == [] and authorized_at(alpha, beta, reference=p["id"]) == ["alpha"]


async def test_a_retry_with_the_same_key_while_unknown_resumes_at_alpha_never_beta(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.TIMEOUT_INQUIRY_UNKNOWN)
    req = NewPayment(payment_method=CARD, amount=500, currency="USD")
    p = orjson.loads((await payments.create(gw, who, req, no_key(who))).body)
    assert (p["status"], p["acquirer"]) == ("pending", "alpha")
    # the retry: the same key finds the payment (its resource) and INQUIRES the latest attempt (never sends
    # it again: its first sender may still be at it); no answer yet: still pending at alpha, beta untouched
    retry = KeyHandle(who.merchant_id, None, "payment_created", p["id"])
    again = orjson.loads((await payments.create(gw, who, req, retry)).body)
    assert (again["id"], again["status"], again["acquirer"]) == (p["id"], "pending", "alpha")
    assert beta.calls == [] and methods(alpha) == ["authorize", "inquire", "inquire"]
    alpha.heal()
    healed = orjson.loads((await payments.create(gw, who, req, retry)).body)
    assert (healed["status"], healed["acquirer"]) == ("captured", "alpha") and beta.calls == []
    assert len({c.key for c in alpha.calls}) == 1  # the same attempt every time, never a new one
    assert [(a["acquirer"], a["result"]) for a in healed["acquirer_attempts"]] == [
        ("alpha", "unknown"), ("alpha", "unknown"), ("alpha", "succeeded")]


class Crash(BaseException):
    """The process dying: nothing after it runs, nothing uncommitted is kept."""


@dataclass
class DiesOnFirstAuthorize(MemoryAcquirer):
    """Beta, with the process dying just before its first authorization is sent (crash point
    `after_failover_intent`: alpha's attempt settled failed, beta's intent committed, not yet sent)."""

    dead: bool = False

    async def authorize(self, **kw: Any) -> AcquirerResult:
        if not self.dead:
            self.dead = True
            raise Crash
        return await super().authorize(**kw)


@pytest.fixture
async def crashed(gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> tuple[Gateway, DiesOnFirstAuthorize, str]:
    beta = DiesOnFirstAuthorize("beta")
    restarted = build_gateway(gw.settings, gw.pool, {"alpha": alpha, "beta": beta})
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE)
    with pytest.raises(Crash):
        await payments.create(restarted, who, NewPayment(payment_method=CARD, amount=700, currency="USD"),
                              no_key(who))
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT id, status, acquirer FROM payments WHERE merchant_id = %s",
                              (who.merchant_id,))
    assert row is not None and (row["status"], row["acquirer"]) == ("pending", "beta")
    assert [(op["acquirer"], op["status"]) for op in await ops(gw, row["id"])] == [
        ("alpha", "failed"), ("beta", "pending")]
    return restarted, beta, row["id"]


async def test_recovery_after_a_crash_mid_failover_settles_the_pending_attempt_at_its_own_acquirer(
        crashed: tuple[Gateway, DiesOnFirstAuthorize, str], alpha: MemoryAcquirer) -> None:
    restarted, beta, payment_id = crashed
    alpha_calls = len(alpha.calls)
    assert await recover_now(restarted) == 1
    # beta never received its attempt: the inquiry fences that key and the payment fails, nothing held
    assert methods(beta) == ["inquire"] and len(alpha.calls) == alpha_calls
    async with restarted.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT status, failure_code FROM payments WHERE id = %s", (payment_id,))
    assert row == {"status": "failed", "failure_code": "processing_error"}
    assert beta.held == {} and alpha.held == {}


async def test_a_retry_after_a_crash_mid_failover_inquires_the_pending_attempt_and_never_resends_it(
        crashed: tuple[Gateway, DiesOnFirstAuthorize, str], who: Principal, alpha: MemoryAcquirer) -> None:
    restarted, beta, payment_id = crashed
    alpha_calls = len(alpha.calls)
    retry = KeyHandle(who.merchant_id, None, "payment_created", payment_id)
    answer = await payments.create(restarted, who, NewPayment(payment_method=CARD, amount=700, currency="USD"), retry)
    assert answer.status == 402
    out = orjson.loads(answer.body)["error"]["payment"]
    # beta's key is inquired (fenced: it never arrived) — never sent by a second request; no acquirer is
    # left untried, so the payment fails with nothing held anywhere
    assert (out["id"], out["status"], out["failure_code"]) == (payment_id, "failed", "processing_error")
    assert methods(beta) == ["inquire"] and len(alpha.calls) == alpha_calls
    assert [(op["acquirer"], op["status"]) for op in await ops(restarted, payment_id)] == [
        ("alpha", "failed"), ("beta", "failed")]
    assert [a["acquirer"] for a in out["acquirer_attempts"]] == ["alpha", "beta"]
    assert alpha.held == {} and beta.held == {}


async def test_a_decline_is_final_and_beta_is_never_called(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    for code in ("card_declined", "insufficient_funds", "incorrect_cvc", "expired_card", "authentication_failed"):
        alpha.script(OpKind.AUTHORIZATION, Step(Behaviour.DECLINE, code))
        status, p = await pay(gw, who)
        assert (status, p["status"], p["failure_code"]) == (402, "failed", code)
        assert attempts(p) == [("alpha", "declined", code)]
    assert beta.calls == []


async def test_a_down_acquirer_is_skipped(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    trip = gw.settings.acquirer_trip_after
    alpha.script(OpKind.AUTHORIZATION, *([Behaviour.REFUSE] * trip))
    for _ in range(trip):  # each refused at alpha, authorized at beta; the last trips alpha's breaker
        status, p = await pay(gw, who)
        assert (status, p["acquirer"]) == (201, "beta")
    async with gw.pool.connection() as conn:
        snap = await acquirer_health.snapshot(conn, ["alpha", "beta"])
    assert (snap["alpha"].status, snap["beta"].status) == ("down", "up")
    before = len(alpha.calls)
    status, p = await pay(gw, who)
    assert (status, p["acquirer"]) == (201, "beta") and len(alpha.calls) == before  # alpha not even tried
    assert attempts(p) == [("beta", "succeeded", None)]


async def test_references_of_capture_void_and_refund_are_the_banks_ids(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE)
    _, held = await pay(gw, who, capture_method="manual")
    captured = orjson.loads((await payments.capture(gw, who, held["id"], None, no_key(who))).body)
    rows = await ops(gw, held["id"])
    assert [r["acquirer"] for r in rows] == ["alpha", "beta", "beta"]  # after failover, capture goes to beta
    assert captured["acquirer_references"] == {"authorization": rows[1]["acquirer_reference"],
                                               "capture": rows[2]["acquirer_reference"], "void": None}
    refund = orjson.loads((await refunds.create(gw, who, payment_id=held["id"], amount=100, reason=None,
                                                metadata={}, key=no_key(who))).body)
    assert refund["status"] == "succeeded" and refund["acquirer_reference"] is not None
    assert refund["acquirer_reference"].startswith("mop_")
    _, voidable = await pay(gw, who, capture_method="manual")
    voided = orjson.loads((await payments.void(gw, who, voidable["id"], no_key(who))).body)
    assert voided["acquirer_references"]["void"] is not None and voided["acquirer"] == "alpha"
    assert methods(beta) == ["authorize", "capture", "refund"]


@pytest.mark.parametrize("first", [Behaviour.REFUSE, Behaviour.ERROR_NOT_APPLIED])
async def test_never_two_banks_hold_one_payment(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer, first: Behaviour) -> None:
    alpha.script(OpKind.AUTHORIZATION, first, Behaviour.ERROR_APPLIED, Behaviour.TIMEOUT_INQUIRY_APPLIED)
    for _ in range(4):
        _, p = await pay(gw, who, capture_method="manual")
        assert len(authorized_at(alpha, beta, reference=p["id"])) == 1
        assert (alpha.held | beta.held).get(p["id"]) == 1_000
        assert not (set(alpha.held) & set(beta.held))


async def test_a_late_authorization_callback_from_the_left_acquirer_is_ignored_and_its_hold_released(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    """A bank that broke its fence and reports an authorization for a payment paygate moved on from: the
    payment stays beta's, and a void at alpha (sent by recovery) releases what alpha claims to hold."""
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE)
    _, p = await pay(gw, who, capture_method="manual")
    assert p["acquirer"] == "beta"
    stray = Callback(acquirer="alpha", id=new_id("bevt"), type="operation.succeeded", outcome="succeeded",
                     reference=p["id"], operation="authorization", amount=1_000, failure_code=None,
                     body={"id": "x"})
    receipt = await bank_events.receive(gw, stray)
    assert receipt.outcome == bank_events.IGNORED
    assert await recover_now(gw) == 1
    assert [c.method for c in alpha.calls] == ["authorize", "void"]
    got = await payments.retrieve(gw, who, p["id"])
    assert (got["status"], got["acquirer"], got["acquirer_references"]["void"]) == ("authorized", "beta", None)
    assert [(op["acquirer"], op["kind"], op["status"]) for op in await ops(gw, p["id"])] == [
        ("alpha", "authorization", "failed"), ("beta", "authorization", "succeeded"), ("alpha", "void", "succeeded")]
