"""Customer authentication end to end (API.md §15): the real simulator's challenge page, the real API, the worker,
over HTTP. Every path: pass, wrong code, cancel, timeout, void first, the callback without the browser's return,
the browser's return without the callback, both twice; return_url on payments and orders and its validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.authentication_support import CHALLENGE_CARD, Browser, challenge_card, challenge_url, query
from tests.e2e.client import Api
from tests.e2e.procs import MakeStack, Stack
from tests.polling import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

RETURN = "http://localhost:4242/shop/done?order=77&lang=en"


async def _payment(api: Api, pid: str) -> dict[str, Any]:
    r = await api.get(f"/v1/payments/{pid}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def _challenged(api: Api, **extra: Any) -> dict[str, Any]:
    r = await api.pay(5000, method=challenge_card(), **extra)
    assert r.status_code == 201, r.text
    p: dict[str, Any] = r.json()
    assert p["status"] == "requires_action" and p["amount_capturable"] == 0, p
    return p


async def _bank_types(api: Api, pid: str) -> list[tuple[str, str]]:
    return [(o["type"], o["status"]) for o in await api.bank_ops(pid)]


async def _events(api: Api, pid: str) -> list[str]:
    r = await api.get("/v1/events", limit=100)
    return sorted(e["type"] for e in r.json()["data"] if e["data"]["object"]["id"] == pid)


async def test_the_challenge_passed_captures_and_returns_to_the_merchant(shared_stack: Stack) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api, return_url=RETURN)
        url = challenge_url(p)
        assert p["next_action"] == {"type": "redirect_to_url", "redirect_to_url": {"url": url, "return_url": RETURN}}
        assert url.startswith(shared_stack.bank_url + "/challenge/")
        assert p["acquirer"] == "bank" and p["status_history"][0]["status"] == "requires_action"
        # nothing is held yet: the bank has an authentication, no authorization
        assert await _bank_types(api, p["id"]) == [("authentication", "pending")]
        page = await browser.page(url)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for test_id in ("challenge-form", "otp-input", "otp-submit", "challenge-cancel"):
            assert f'data-test-id="{test_id}"' in page.text
        assert "<script" not in page.text and CHALLENGE_CARD not in page.text
        target = await browser.complete(url)
        # the merchant's URL with its own query kept and payment_id added
        assert target.startswith("http://localhost:4242/shop/done?")
        assert query(target) == {"order": ["77"], "lang": ["en"], "payment_id": [p["id"]]}
        # by the time the browser gets there, the payment is no longer requires_action: it is captured
        done = await _payment(api, p["id"])
        assert done["status"] == "captured" and done["amount_captured"] == 5000 and done["next_action"] is None
        assert [h["status"] for h in done["status_history"]] == ["requires_action", "pending", "captured"]
        assert done["acquirer"] == "bank" and done["failure_code"] is None
        assert await _bank_types(api, p["id"]) == [
            ("authentication", "succeeded"), ("authorization", "succeeded"), ("capture", "succeeded")]
        assert "payment.requires_action" in await _events(api, p["id"])
        assert "payment.captured" in await _events(api, p["id"])


async def test_a_manual_payment_is_authorized_after_the_challenge_and_captures_later(shared_stack: Stack) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api, capture_method="manual")
        assert p["next_action"]["redirect_to_url"]["return_url"] is None
        # before the answer is known, the outcome page says so honestly, and reloads itself until it is
        waiting = await browser.page(f"{shared_stack.api_url}/payments/{p['id']}/authentication")
        assert 'data-test-id="payment-waiting"' in waiting.text and 'http-equiv="refresh"' in waiting.text
        assert "You may close this page" not in waiting.text
        # it reloads through the return endpoint, which sends the browser on once the outcome is known
        assert f'content="5; url=/payments/{p["id"]}/authentication/return"' in waiting.text
        target = await browser.complete(challenge_url(p))
        # no return_url: paygate's own outcome page
        assert target == f"{shared_stack.api_url}/payments/{p['id']}/authentication"
        page = await browser.page(target)
        assert page.status_code == 200 and 'data-test-id="payment-outcome"' in page.text
        assert 'data-test-id="payment-status">authorized<' in page.text
        assert 'data-test-id="payment-waiting"' not in page.text and 'http-equiv="refresh"' not in page.text
        done = await _payment(api, p["id"])
        assert done["status"] == "authorized" and done["amount_capturable"] == 5000
        r = await api.post(f"/v1/payments/{p['id']}/capture", {"amount": 3000})
        assert r.status_code == 200 and r.json()["status"] == "captured" and r.json()["amount_captured"] == 3000


@pytest.mark.parametrize("answer", ["wrong", "cancel"])
async def test_a_wrong_code_or_a_cancel_fails_the_payment(shared_stack: Stack, answer: str) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api, return_url=RETURN)
        target = await browser.complete(challenge_url(p), "654321", cancel=answer == "cancel")
        assert query(target)["payment_id"] == [p["id"]]
        done = await _payment(api, p["id"])
        assert done["status"] == "failed" and done["failure_code"] == "authentication_failed", done
        assert done["next_action"] is None and done["amount_capturable"] == 0
        # nothing was ever sent for authorization
        assert await _bank_types(api, p["id"]) == [("authentication", "failed")]
        assert "payment.failed" in await _events(api, p["id"])


async def test_both_the_browser_and_the_callback_twice_apply_once(shared_stack: Stack) -> None:
    """The customer submits twice (double click, back button), the browser comes back twice, and the callback
    comes too: one authorization at the bank, one capture, the second submission changes nothing."""
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api, return_url=RETURN)
        url = challenge_url(p)
        first = await browser.answer(url, "123456")
        again = await browser.answer(url, "000000")  # answered already: the same 303, nothing changes
        assert first.status_code == again.status_code == 303
        assert first.headers["location"] == again.headers["location"]
        back1, back2 = await browser.follow(first), await browser.follow(again)
        assert back1.status_code == back2.status_code == 303
        assert back1.headers["location"] == back2.headers["location"]
        answered = await browser.page(url)  # the page itself now says it was answered
        assert answered.status_code == 200 and 'data-test-id="challenge-answered"' in answered.text

        async def callback_applied() -> bool:
            return bool(await _bank_callback_outcomes(shared_stack, p["id"]))

        await eventually(callback_applied, within_s=20, interval=0.1)
        done = await _payment(api, p["id"])
        assert done["status"] == "captured" and done["amount_captured"] == 5000
        assert await _bank_types(api, p["id"]) == [
            ("authentication", "succeeded"), ("authorization", "succeeded"), ("capture", "succeeded")]
        assert (await _events(api, p["id"])).count("payment.captured") == 1


async def _bank_callback_outcomes(stack: Stack, pid: str) -> list[str]:
    import psycopg

    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute("SELECT outcome FROM bank_events WHERE reference = %s AND type LIKE 'authentication.%%'",
                            (pid,)).fetchall()
    return [str(r[0]) for r in rows]


async def test_the_callback_alone_completes_the_payment(shared_stack: Stack) -> None:
    """The browser never comes back (closed tab): the bank's signed callback authorizes and captures."""
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api)
        r = await browser.answer(challenge_url(p), "123456")
        assert r.status_code == 303  # not followed

        async def captured() -> dict[str, Any] | None:
            q = await _payment(api, p["id"])
            return q if q["status"] == "captured" else None

        done = await eventually(captured, within_s=30, interval=0.1)
        assert done["amount_captured"] == 5000
        assert await _bank_callback_outcomes(shared_stack, p["id"]) == ["applied"]
        assert await _bank_types(api, p["id"]) == [
            ("authentication", "succeeded"), ("authorization", "succeeded"), ("capture", "succeeded")]


async def test_a_failed_challenge_by_callback_alone_fails_the_payment(shared_stack: Stack) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api)
        await browser.answer(challenge_url(p), cancel=True)

        async def failed() -> dict[str, Any] | None:
            q = await _payment(api, p["id"])
            return q if q["status"] == "failed" else None

        done = await eventually(failed, within_s=30, interval=0.1)
        assert done["failure_code"] == "authentication_failed"


async def test_the_browser_alone_completes_the_payment_when_the_callback_is_late(make_stack: MakeStack) -> None:
    """The bank's callbacks are held back (the simulator's callback_delay_ms knob): the browser's return asks the
    bank, and the payment is captured before the browser is sent on; the late callback changes nothing."""
    stack = make_stack()
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api, Browser() as browser:
        assert api.bank is not None
        r = await api.bank.put("/v1/faults", json={"callback_delay_ms": "3000-3000"})
        assert r.status_code == 200 and r.json()["callback_delay_ms"] == "3000-3000"
        p = await _challenged(api, return_url=RETURN)
        target = await browser.complete(challenge_url(p))
        assert query(target)["payment_id"] == [p["id"]]
        assert await _bank_callback_outcomes(stack, p["id"]) == []  # the callback has not come yet
        done = await _payment(api, p["id"])
        assert done["status"] == "captured"

        async def callback_came() -> list[str]:
            return await _bank_callback_outcomes(stack, p["id"])

        assert await eventually(callback_came, within_s=30, interval=0.1) == ["redundant"]
        assert (await _payment(api, p["id"]))["status_history"] == done["status_history"]
        assert len(await _bank_types(api, p["id"])) == 3


async def test_a_challenge_not_completed_in_time_fails_and_a_late_answer_changes_nothing(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(PAYGATE_AUTHENTICATION_TTL="1")
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api, return_url=RETURN)

        async def timed_out() -> dict[str, Any] | None:
            q = await _payment(api, p["id"])
            return q if q["status"] == "failed" else None

        done = await eventually(timed_out, within_s=30, interval=0.1)
        assert done["failure_code"] == "authentication_timeout" and done["next_action"] is None
        # the customer answers after all: the bank takes it, paygate does not move
        target = await browser.complete(challenge_url(p))
        assert query(target)["payment_id"] == [p["id"]]

        async def callback_came() -> list[str]:
            return await _bank_callback_outcomes(stack, p["id"])

        assert await eventually(callback_came, within_s=30, interval=0.1) == ["ignored"]
        after = await _payment(api, p["id"])
        assert after["status"] == "failed" and after["status_history"] == done["status_history"]
        assert await _bank_types(api, p["id"]) == [("authentication", "succeeded")]  # never authorized


async def test_void_first_then_a_passed_challenge_changes_nothing(shared_stack: Stack) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        p = await _challenged(api)
        cap = await api.post(f"/v1/payments/{p['id']}/capture")
        assert cap.status_code == 409 and cap.json()["error"]["code"] == "payment_not_capturable"
        r = await api.post(f"/v1/payments/{p['id']}/void")
        assert r.status_code == 200, r.text
        voided = r.json()
        assert voided["status"] == "voided" and voided["next_action"] is None and voided["amount_capturable"] == 0
        target = await browser.complete(challenge_url(p))
        assert target == f"{shared_stack.api_url}/payments/{p['id']}/authentication"

        async def callback_came() -> list[str]:
            return await _bank_callback_outcomes(shared_stack, p["id"])

        assert await eventually(callback_came, within_s=30, interval=0.1) == ["ignored"]
        after = await _payment(api, p["id"])
        assert after["status"] == "voided" and after["status_history"] == voided["status_history"]
        assert await _bank_types(api, p["id"]) == [("authentication", "succeeded")]  # nothing held, nothing sent
        again = await api.post(f"/v1/payments/{p['id']}/void")
        assert again.status_code == 409 and again.json()["error"]["code"] == "payment_not_voidable"


@pytest.mark.parametrize("bad", ["ftp://example.com/x", "/relative/path", "javascript:alert(1)", "http://",
                                 "https://user:pw@example.com/", "not a url", "http://example.com/\u0007"])
async def test_a_bad_return_url_is_400_and_changes_nothing(shared_stack: Stack, bad: str) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api:
        r = await api.pay(5000, method=challenge_card(), return_url=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_invalid", r.text
        assert r.json()["error"]["param"] == "return_url"
        o = await api.post("/v1/orders", {"amount": 5000, "currency": "USD", "return_url": bad})
        assert o.status_code == 400 and o.json()["error"]["param"] == "return_url", o.text
        listed = await api.get("/v1/payments")
        assert listed.json()["data"] == []


async def test_a_publishable_key_may_not_set_a_return_url(shared_stack: Stack) -> None:
    # paygate's return endpoint 303s to a payment's return_url: a public key that could set it would mint a
    # paygate URL redirecting anywhere. Refused like any other secret-only field, and nothing is created.
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, \
            Api(shared_stack.api_url, m["publishable_key"]) as pk:
        o = await api.post("/v1/orders", {"amount": 2500, "currency": "USD"})
        assert o.status_code == 201, o.text
        r = await pk.post("/v1/payments", {"order_id": o.json()["id"], "payment_method": challenge_card(),
                                           "return_url": "https://evil.example/phish"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["type"] == "permission_error"
        assert r.json()["error"]["code"] == "publishable_key_restricted"
        assert (await api.get("/v1/payments")).json()["data"] == []
        # the same request without it is the checkout's: allowed
        ok = await pk.post("/v1/payments", {"order_id": o.json()["id"], "payment_method": challenge_card()})
        assert ok.status_code == 201 and ok.json()["status"] == "requires_action", ok.text
        assert ok.json()["next_action"]["redirect_to_url"]["return_url"] is None


async def test_orders_take_a_return_url_and_show_it(shared_stack: Stack) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        o = await api.post("/v1/orders", {"amount": 2500, "currency": "USD", "return_url": "http://127.0.0.1:9/x"})
        assert o.status_code == 201 and o.json()["return_url"] == "http://127.0.0.1:9/x", o.text
        got = await api.get(f"/v1/orders/{o.json()['id']}")
        assert got.json()["return_url"] == "http://127.0.0.1:9/x"
        plain = await api.post("/v1/orders", {"amount": 2500, "currency": "USD"})
        assert plain.json()["return_url"] is None
        # a challenged payment for the order; the customer gives up and pays again: the first is superseded
        first = await api.post("/v1/payments", {"order_id": o.json()["id"], "payment_method": challenge_card()})
        assert first.status_code == 201 and first.json()["status"] == "requires_action", first.text
        second = await api.post("/v1/payments", {"order_id": o.json()["id"], "payment_method": challenge_card()})
        assert second.status_code == 201 and second.json()["status"] == "requires_action", second.text
        assert (await _payment(api, first.json()["id"]))["status"] == "voided"
        # the first one's challenge answered late changes nothing; the second pays the order
        await browser.complete(challenge_url(first.json()))
        await browser.complete(challenge_url(second.json()))
        assert (await _payment(api, first.json()["id"]))["status"] == "voided"
        assert (await _payment(api, second.json()["id"]))["status"] == "captured"
        order = (await api.get(f"/v1/orders/{o.json()['id']}")).json()
        assert order["status"] == "paid" and order["amount_paid"] == 2500


async def test_webhook_endpoints_subscribe_to_payment_requires_action(shared_stack: Stack) -> None:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api:
        r = await api.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hooks",
                                                     "enabled_events": ["payment.requires_action"]})
        assert r.status_code == 201 and r.json()["enabled_events"] == ["payment.requires_action"], r.text
        listed = await api.get("/v1/events", type="payment.requires_action")
        assert listed.status_code == 200


async def test_a_return_for_an_unknown_payment_is_404(shared_stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{shared_stack.api_url}/payments/pay_nope/authentication/return")
        assert r.status_code == 404
        r = await http.get(f"{shared_stack.bank_url}/challenge/bop_nope")
        assert r.status_code == 404
        r = await http.post(f"{shared_stack.bank_url}/challenge/bop_nope", data={"otp": "123456"})
        assert r.status_code == 404



async def test_a_card_saved_through_the_challenge_is_challenged_on_session_and_not_off_session(
    shared_stack: Stack,
) -> None:
    """§16: the challenge card is saved while paying, through the challenge; its on-session use is challenged
    again, an off-session charge needs none; a failed challenge saves nothing."""
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as api, Browser() as browser:
        customer = (await api.post("/v1/customers", {"email": "sca@example.com"})).json()["id"]
        failed = await _challenged(api, customer=customer, save_payment_method=True)
        await browser.complete(challenge_url(failed), "000000")
        assert (await api.get(f"/v1/customers/{customer}/payment_methods")).json()["data"] == []

        p = await _challenged(api, customer=customer, save_payment_method=True)
        await browser.complete(challenge_url(p))
        done = await _payment(api, p["id"])
        assert done["status"] == "captured"
        methods = (await api.get(f"/v1/customers/{customer}/payment_methods")).json()["data"]
        assert len(methods) == 1 and methods[0]["card"]["last4"] == "3220", methods
        pm = methods[0]["id"]
        assert done["payment_method"]["id"] == pm

        on = await api.post("/v1/payments", {"amount": 1200, "currency": "USD", "payment_method": pm,
                                             "customer": customer})
        assert on.status_code == 201 and on.json()["status"] == "requires_action", on.text
        await browser.complete(challenge_url(on.json()))
        assert (await _payment(api, on.json()["id"]))["status"] == "captured"

        off = await api.post("/v1/payments", {"amount": 1300, "currency": "USD", "payment_method": pm,
                                              "customer": customer, "off_session": True})
        assert off.status_code == 201 and off.json()["status"] == "captured", off.text
        assert await _bank_types(api, off.json()["id"]) == [("authorization", "succeeded"), ("capture", "succeeded")]
