"""Customer authentication's use cases (services/authentication.py) against two in-memory acquirers and the real
store: the acquirer that authenticates authorizes (no failover), an unanswered authorization after a challenge is
re-sent by recovery rather than failed, the browser's return and the callback racing authorize once, and the
authentication's own failures."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from paygate.acquirers.base import Callback, OpKind
from paygate.acquirers.memory import Behaviour, MemoryAcquirer
from paygate.domain.ids import new_id
from paygate.services import authentication, bank_events, payments
from paygate.services.gateway import Gateway, Principal
from paygate.services.idempotency import KeyHandle
from paygate.services.payments import NewPayment
from paygate.store.db import fetch_all, fetch_one
from paygate.worker import maintenance
from tests.integration.test_payment_use_cases import methods, recover_now

CHALLENGE: dict[str, Any] = {"type": "card", "card": {"number": "4000000000003220", "exp_month": 1, "exp_year": 2031,
                                                      "cvc": "111"}}




async def challenged(gw: Gateway, who: Principal, capture_method: str = "automatic",
                     return_url: str | None = None) -> tuple[int, dict[str, Any]]:
    out = await payments.create(gw, who, NewPayment(payment_method=CHALLENGE, amount=1_000, currency="USD",
                                                    capture_method=capture_method, return_url=return_url),
                                KeyHandle(who.merchant_id, None))
    body: dict[str, Any] = orjson.loads(out.body)
    return out.status, body.get("error", {}).get("payment", body)


async def authentication_key(gw: Gateway, pid: str) -> str:
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT id FROM bank_operations WHERE payment_id = %s AND kind = 'authentication'"
                                    " ORDER BY created_at DESC, id DESC LIMIT 1", (pid,))
    assert row is not None
    return str(row["id"])


async def status(gw: Gateway, pid: str) -> str:
    async with gw.pool.connection() as conn:
        p = await authentication.find(conn, pid)
    assert p is not None
    return str(p["status"])


def callback(pid: str, passed: bool, acquirer: str = "alpha") -> Callback:
    kind = "authentication.succeeded" if passed else "authentication.failed"
    return Callback(acquirer=acquirer, id=new_id("bevt"), type=kind, outcome="succeeded" if passed else "failed",
                    reference=pid, operation="authentication", amount=0, failure_code=None,
                    body={"type": kind, "data": {"reference": pid}})


async def test_the_acquirer_that_authenticated_authorizes_and_recovery_resends_instead_of_failing_over(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    code, p = await challenged(gw, who)
    assert (code, p["status"], p["acquirer"]) == (201, "requires_action", "alpha")
    assert p["next_action"]["redirect_to_url"]["url"].startswith("http://alpha.invalid/challenge/")
    alpha.answer_challenge(await authentication_key(gw, p["id"]), passed=True)
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE)  # the authorization's send never arrives
    await authentication.browser_return(gw, p["id"])
    # not failed, not failed over: the authentication binds the payment to alpha; it waits for recovery
    assert await status(gw, p["id"]) == "pending" and beta.calls == []
    assert await recover_now(gw) >= 1
    assert await status(gw, p["id"]) == "captured"
    sends = [c.key for c in alpha.calls if c.method == "authorize"]
    assert len(sends) == 2 and len(set(sends)) == 1  # the same key twice: one authorization at the bank
    assert beta.calls == [] and [k for k, s in alpha.operations(p["id"]) if s == "succeeded"] == [
        OpKind.AUTHENTICATION, OpKind.AUTHORIZATION]


async def test_the_browser_and_the_callback_racing_authorize_once(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    _code, p = await challenged(gw, who, capture_method="manual")
    alpha.answer_challenge(await authentication_key(gw, p["id"]), passed=True)
    await asyncio.gather(authentication.browser_return(gw, p["id"]), bank_events.receive(gw, callback(p["id"], True)),
                         authentication.browser_return(gw, p["id"]), bank_events.receive(gw, callback(p["id"], True)))
    assert await status(gw, p["id"]) == "authorized"
    assert len({c.key for c in alpha.calls if c.method == "authorize"}) == 1
    assert alpha.held == {p["id"]: 1_000}
    async with gw.pool.connection() as conn:
        events = await fetch_all(conn, "SELECT type FROM events WHERE object_id = %s ORDER BY created_at", (p["id"],))
        receipts = await fetch_all(conn, "SELECT outcome FROM bank_events WHERE reference = %s", (p["id"],))
    assert [e["type"] for e in events] == ["payment.requires_action", "payment.authorized"]
    assert sorted(r["outcome"] for r in receipts) in (["applied", "redundant"], ["redundant", "redundant"])


async def test_a_late_result_after_a_void_or_a_failure_changes_nothing(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    _code, p = await challenged(gw, who)
    receipt = await bank_events.receive(gw, callback(p["id"], False))
    assert receipt.outcome == "applied" and await status(gw, p["id"]) == "failed"
    alpha.answer_challenge(await authentication_key(gw, p["id"]), passed=True)  # the bank says otherwise, later
    assert (await bank_events.receive(gw, callback(p["id"], True))).outcome == "ignored"
    await authentication.browser_return(gw, p["id"])
    assert await status(gw, p["id"]) == "failed" and "authorize" not in methods(alpha)


async def test_a_callback_from_another_acquirer_counts_for_nothing(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    _code, p = await challenged(gw, who)
    assert (await bank_events.receive(gw, callback(p["id"], True, acquirer="beta"))).outcome == "ignored"
    assert await status(gw, p["id"]) == "requires_action"


async def test_an_authentication_never_sent_moves_on_and_the_next_acquirer_authorizes(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHENTICATION, Behaviour.REFUSE)
    code, p = await challenged(gw, who)
    assert (code, p["status"], p["acquirer"]) == (201, "requires_action", "beta")
    assert [(a["acquirer"], a["result"]) for a in p["acquirer_attempts"]] == [("alpha", "unavailable")]
    beta.answer_challenge(await authentication_key(gw, p["id"]), passed=True)
    await authentication.browser_return(gw, p["id"])
    assert await status(gw, p["id"]) == "captured"
    assert methods(alpha) == ["authenticate"] and methods(beta) == ["authenticate", "inquire", "authorize"]
    # a late callback from alpha (which never had it) counts for nothing
    assert (await bank_events.receive(gw, callback(p["id"], True, acquirer="alpha"))).outcome == "ignored"


async def test_an_authentication_sent_nowhere_fails_as_processing_error(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHENTICATION, Behaviour.REFUSE)
    beta.script(OpKind.AUTHENTICATION, Behaviour.REFUSE)
    code, p = await challenged(gw, who)
    assert (code, p["status"], p["failure_code"]) == (402, "failed", "processing_error")
    assert "authorize" not in methods(alpha) + methods(beta)


async def test_a_lost_answer_to_the_authentication_is_inquired(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHENTICATION, Behaviour.ERROR_APPLIED)
    code, p = await challenged(gw, who)
    assert (code, p["status"]) == (201, "requires_action") and p["next_action"] is not None
    assert methods(alpha) == ["authenticate", "inquire"]


async def test_the_timeout_fails_only_challenges_past_the_ttl(gw: Gateway, who: Principal) -> None:
    _code, old = await challenged(gw, who)
    _code, fresh = await challenged(gw, who)
    async with gw.pool.connection() as conn:
        await conn.execute("UPDATE payments SET created_at = created_at - interval '901 seconds' WHERE id = %s",
                           (old["id"],))
    assert await authentication.expire_once(gw) == 1
    assert await status(gw, old["id"]) == "failed" and await status(gw, fresh["id"]) == "requires_action"
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT failure_code FROM payments WHERE id = %s", (old["id"],))
    assert row is not None and row["failure_code"] == "authentication_timeout"


SHOP = "https://shop.example/done?order=7"


async def test_the_browser_never_reaches_return_url_while_the_bank_answer_is_unknown(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    # §15.3: by the time the browser reaches return_url, the payment is no longer requires_action
    _code, p = await challenged(gw, who, return_url=SHOP)
    page = p["next_action"]["redirect_to_url"]["url"]
    alpha.answer_challenge(await authentication_key(gw, p["id"]), passed=True)
    alpha.inquiries_reachable = False  # the customer answered; paygate's inquiry goes unanswered
    assert await authentication.browser_return(gw, p["id"]) == page  # back to the bank's page, not the shop's
    assert await status(gw, p["id"]) == "requires_action"
    alpha.heal()
    target = await authentication.browser_return(gw, p["id"])
    assert target is not None and target.startswith("https://shop.example/done?")
    assert await status(gw, p["id"]) == "captured"


async def test_without_the_bank_page_recorded_the_browser_waits_on_paygates_page(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHENTICATION, Behaviour.TIMEOUT_INQUIRY_UNKNOWN)  # opened, its answer lost, no inquiry
    code, p = await challenged(gw, who, return_url=SHOP)
    assert (code, p["status"], p["next_action"]) == (201, "requires_action", None)
    waiting = authentication.outcome_page(gw, p["id"])
    assert await authentication.browser_return(gw, p["id"]) == waiting
    assert await status(gw, p["id"]) == "requires_action"
    # the bank answers again, still pending: its page is recorded now, and the browser is sent there
    alpha.heal()
    target = await authentication.browser_return(gw, p["id"])
    assert target is not None and target.startswith("http://alpha.invalid/challenge/")
    assert await status(gw, p["id"]) == "requires_action"


async def test_resending_an_unanswered_authorization_counts_no_attempt_per_pass(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    # the authorization after a challenge is re-sent by every pass until answered; a lost answer is not a
    # failure per pass, neither on the payment's attempts nor on the acquirer's breaker (ordinary recovery only
    # inquires, and records neither)
    _code, p = await challenged(gw, who)
    alpha.answer_challenge(await authentication_key(gw, p["id"]), passed=True)
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE, Behaviour.REFUSE, Behaviour.REFUSE)
    await authentication.browser_return(gw, p["id"])
    await authentication.authorize_now(gw, p["id"])
    await authentication.authorize_now(gw, p["id"])
    assert await status(gw, p["id"]) == "pending" and methods(alpha).count("authorize") == 3
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT acquirer_attempts FROM payments WHERE id = %s", (p["id"],))
        counted = await fetch_all(conn, "SELECT result FROM acquirer_attempts WHERE payment_id = %s", (p["id"],))
        health = await fetch_one(conn, "SELECT consecutive_failures FROM acquirer_health WHERE acquirer = 'alpha'")
    assert row is not None and not row["acquirer_attempts"] and counted == []
    assert health is None or health["consecutive_failures"] == 0
    assert await recover_now(gw) >= 1  # answered at last: that one attempt is recorded
    assert await status(gw, p["id"]) == "captured"
    async with gw.pool.connection() as conn:
        counted = await fetch_all(conn, "SELECT result FROM acquirer_attempts WHERE payment_id = %s", (p["id"],))
    assert [c["result"] for c in counted] == ["succeeded"]


async def test_an_abandoned_create_is_not_completed_while_its_authorization_is_in_flight(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    # a create that died after `authentication_started`; the challenge passed meanwhile and the authorization's
    # answer is lost: its retries must not get `pending` as the final answer (payment_created waits the same way)
    _code, p = await challenged(gw, who)
    alpha.answer_challenge(await authentication_key(gw, p["id"]), passed=True)
    alpha.script(OpKind.AUTHORIZATION, Behaviour.REFUSE)
    await authentication.browser_return(gw, p["id"])
    assert await status(gw, p["id"]) == "pending"
    key = new_id("idem")
    async with gw.pool.connection() as conn:
        await conn.execute("INSERT INTO idempotency_keys (merchant_id, key, method, path, fingerprint, recovery_point,"
                           " resource_id) VALUES (%s, %s, 'POST', '/v1/payments', %s, 'authentication_started', %s)",
                           (who.merchant_id, key, b"\x00", p["id"]))

    async def stored() -> Any:
        async with gw.pool.connection() as conn:
            return await fetch_one(conn, "SELECT response_status, response_body FROM idempotency_keys"
                                         " WHERE merchant_id = %s AND key = %s", (who.merchant_id, key))

    await maintenance.complete_abandoned_keys(gw)
    assert (await stored())["response_status"] is None
    assert await recover_now(gw) >= 1 and await status(gw, p["id"]) == "captured"
    await maintenance.complete_abandoned_keys(gw)
    row = await stored()
    assert row["response_status"] == 201 and orjson.loads(row["response_body"])["status"] == "captured"
