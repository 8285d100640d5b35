"""The simulator's customer authentication (API.md §15, §12 v2) against a real PostgreSQL, in-process: the
authentication operation, its challenge page, the answer (once), the signed callback, and the authorization
that names the authentication."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from paygate.domain.ids import new_id
from tests.integration.test_bank_sim import Bank, Receiver, bank_db, ref, running_bank  # noqa: F401 - bank_db
from tests.polling import eventually


@pytest.fixture
async def sim(bank_db: str) -> AsyncIterator[Bank]:  # noqa: F811 - the fixture, by name
    async with running_bank(bank_db) as b:
        yield b

CHALLENGE = {"type": "card", "card": {"number": "4000000000003220", "exp_month": 1, "exp_year": 2031, "cvc": "111"}}
RETURN = "http://paygate.test/payments/x/authentication/return"


async def _authenticate(sim: Bank, reference: str, *, amount: int = 2_000, callback_url: str | None = None,
                        method: dict[str, Any] | None = None, key: str | None = None) -> httpx.Response:
    body = {"reference": reference, "amount": amount, "currency": "USD", "payment_method": method or CHALLENGE,
            "callback_url": callback_url, "return_url": RETURN}
    return await sim.post("/v1/authentications", body, key or new_id("key"))


def _path(url: str) -> str:
    return url.removeprefix("http://bank")


async def _authorize_with(sim: Bank, reference: str, authentication: str, amount: int = 2_000,
                          capture: bool = True) -> dict[str, Any]:
    r = await sim.post("/v1/authorizations", {
        "reference": reference, "amount": amount, "currency": "USD", "capture": capture,
        "payment_method": {"type": "authenticated", "authentication": authentication}}, new_id("key"))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_a_challenge_passed_once_is_reported_signed_and_authorizes_once(sim: Bank) -> None:
    async with Receiver() as receiver:
        pid, key = ref(), new_id("key")
        r = await _authenticate(sim, pid, callback_url=receiver.url, key=key)
        op = r.json()
        assert r.status_code == 200 and (op["type"], op["status"]) == ("authentication", "pending"), op
        assert op["challenge_url"] == f"http://bank/challenge/{op['id']}"
        # idempotent under paygate's key, and inquiries answer it with its page
        again = await _authenticate(sim, pid, callback_url=receiver.url, key=key)
        assert again.json() == op and again.headers["idempotent-replayed"] == "true"
        assert (await sim.inquire(key))["operation"]["challenge_url"] == op["challenge_url"]
        page = await sim.http.get(_path(op["challenge_url"]))
        assert page.status_code == 200 and "frame-ancestors" in page.headers["content-security-policy"]
        assert "20.00 USD" in page.text and "4000000000003220" not in page.text and "<script" not in page.text
        assert "123456" not in page.text  # the code is checked by the bank, never shipped in the page
        answer = await sim.http.post(_path(op["challenge_url"]), data={"otp": "123456"})
        assert answer.status_code == 303 and answer.headers["location"] == RETURN
        # answered once: a second answer (even a wrong one) gets the same 303 and changes nothing
        second = await sim.http.post(_path(op["challenge_url"]), data={"otp": "999999"})
        assert second.status_code == 303 and second.headers["location"] == RETURN
        assert (await sim.inquire(key))["operation"]["status"] == "succeeded"
        await eventually(lambda: len(receiver.requests) >= 1)
        [event] = receiver.events()
        assert event["type"] == "authentication.succeeded" and event["data"] == {"reference": pid}
        before = await sim.card("4000000000003220")
        done = await _authorize_with(sim, pid, op["id"])
        assert (done["status"], done["captured"]) == ("succeeded", True)
        after = await sim.card("4000000000003220")
        assert after["captured"] - before["captured"] == 2_000
        # the authentication is used: it authorizes nothing more
        other = await _authorize_with(sim, ref(), op["id"])
        assert (other["status"], other["failure_code"]) == ("failed", "authentication_required")
        assert [(o["type"], o["status"]) for o in await sim.ops(pid)] == [
            ("authentication", "succeeded"), ("authorization", "succeeded"), ("capture", "succeeded")]


async def test_a_wrong_code_or_a_cancel_fails_and_authorizes_nothing(sim: Bank) -> None:
    async with Receiver() as receiver:
        for form in ({"otp": "12345"}, {"cancel": "1"}, {"otp": ""}, {}):
            pid = ref()
            op = (await _authenticate(sim, pid, callback_url=receiver.url)).json()
            r = await sim.http.post(_path(op["challenge_url"]), data=form)
            assert r.status_code == 303
            assert [(o["type"], o["status"], o["failure_code"]) for o in await sim.ops(pid)] == [
                ("authentication", "failed", "authentication_failed")]
            refused = await _authorize_with(sim, pid, op["id"])
            assert (refused["status"], refused["failure_code"]) == ("failed", "authentication_required")
        await eventually(lambda: len(receiver.requests) >= 4)
        assert {e["type"] for e in receiver.events()} == {"authentication.failed"}


async def test_the_authentication_checks_the_card_and_the_authorization_its_bounds(sim: Bank) -> None:
    expired = {"type": "card", "card": {"number": "4000000000003220", "exp_month": 1, "exp_year": 2020}}
    op = (await _authenticate(sim, ref(), method=expired)).json()
    assert (op["status"], op["failure_code"], op["challenge_url"]) == ("failed", "expired_card", None)
    pid = ref()
    op = (await _authenticate(sim, pid, amount=1_000)).json()
    await sim.http.post(_path(op["challenge_url"]), data={"otp": "123456"})
    too_much = await _authorize_with(sim, pid, op["id"], amount=1_001)
    assert too_much["failure_code"] == "authentication_required"
    wrong_ref = await _authorize_with(sim, ref(), op["id"], amount=1_000)
    assert wrong_ref["failure_code"] == "authentication_required"
    ok = await _authorize_with(sim, pid, op["id"], amount=1_000, capture=False)
    assert ok["status"] == "succeeded" and not ok["captured"]


async def test_the_challenge_card_needs_a_challenge_unless_charged_as_a_stored_card(sim: Bank) -> None:
    with_cvc = await sim.authorize(reference=ref(), number="4000000000003220", cvc="111", exp=(1, 2031))
    assert (with_cvc.json()["status"], with_cvc.json()["failure_code"]) == ("failed", "authentication_required")
    stored = await sim.post("/v1/authorizations", {
        "reference": ref(), "amount": 500, "currency": "USD", "payment_method": {"type": "card", "card": {
            "number": "4000000000003220", "exp_month": 1, "exp_year": 2031}}}, new_id("key"))
    assert stored.json()["status"] == "succeeded"


async def test_pages_of_unknown_challenges_and_odd_forms_never_fail(sim: Bank) -> None:
    assert (await sim.http.get("/challenge/bop_nope")).status_code == 404
    assert (await sim.http.post("/challenge/bop_nope", data={"otp": "123456"})).status_code == 404
    op = (await _authenticate(sim, ref())).json()
    path = _path(op["challenge_url"])
    form = {"content-type": "application/x-www-form-urlencoded"}
    odd = await sim.http.post(path, content=b"\xff\xfe=%%%", headers=form)
    assert odd.status_code == 303  # unreadable: no code, so the challenge fails
    assert (await sim.http.post(path, content=b"otp=" + b"1" * 5000)).status_code == 413
    answered = await sim.http.get(path)
    assert answered.status_code == 200 and 'data-test-id="challenge-answered"' in answered.text


async def test_authentication_callbacks_can_be_held_back(sim: Bank) -> None:
    async with Receiver() as receiver:
        r = await sim.http.put("/v1/faults", json={"callback_delay_ms": "800-800"})
        assert r.status_code == 200 and r.json()["callback_delay_ms"] == "800-800"
        try:
            op = (await _authenticate(sim, ref(), callback_url=receiver.url)).json()
            await sim.http.post(_path(op["challenge_url"]), data={"otp": "123456"})
            assert receiver.requests == []
            await eventually(lambda: len(receiver.requests) == 1, within_s=10)
        finally:
            await sim.http.put("/v1/faults", json={"callback_delay_ms": "0-0"})
        bad = await sim.http.put("/v1/faults", json={"callback_delay_ms": "9-1"})
        assert bad.status_code == 400
