"""Crashes along a customer authentication (API.md §15, docs/authentication.md "Crashes and recovery"): the API is
killed (PAYGATE_CRASH_POINT, os._exit) at each point where the bank has acted and paygate has not committed; the
payment is resolved afterwards — by the retry with the same key or by the worker — and the bank authorized it
at most once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.authentication_support import Browser, challenge_card, challenge_url
from tests.e2e.client import Api, new_key
from tests.e2e.procs import MakeStack, Stack
from tests.polling import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _rows(stack: Stack, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute(sql, params).fetchall()


def _arm(stack: Stack, point: str | None) -> None:
    api = stack.procs["api"]
    api.kill()
    if point is None:
        api.env.pop("PAYGATE_CRASH_POINT", None)
    else:
        api.env["PAYGATE_CRASH_POINT"] = point
    api.start()


async def _status(api: Api, pid: str, want: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        p: dict[str, Any] = (await api.get(f"/v1/payments/{pid}")).json()
        return p if p["status"] == want else None

    return await eventually(reached, within_s=90, interval=0.2)


async def test_a_crash_after_the_bank_opened_the_challenge_is_answered_by_the_retry(make_stack: MakeStack) -> None:
    stack = make_stack(worker=False, PAYGATE_IDEMPOTENCY_LOCK_S="2")
    m = stack.merchant()
    key = new_key()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        _arm(stack, "after_bank_authentication")
        with pytest.raises(httpx.TransportError):
            await api.pay(5000, method=challenge_card(), key=key)
        [(pid, status, page)] = _rows(stack, "SELECT id, status, challenge_url FROM payments")
        assert (status, page) == ("requires_action", None)  # the bank's answer was never recorded
        assert [(o["type"], o["status"]) for o in await api.bank_ops(pid)] == [("authentication", "pending")]
        _arm(stack, None)
        for _ in range(60):  # the dead request's lease runs out first
            r = await api.pay(5000, method=challenge_card(), key=key)
            if r.status_code != 409:
                break
            await asyncio.sleep(float(r.headers["retry-after"]))
        assert r.status_code == 201 and r.json()["id"] == pid, r.text
        p = r.json()
        assert p["status"] == "requires_action"
        assert p["next_action"]["redirect_to_url"]["url"].startswith(stack.bank_url)
        assert _rows(stack, "SELECT count(*) FROM events WHERE type = 'payment.requires_action'") == [(1,)]
        async with Browser() as browser:
            await browser.complete(challenge_url(p))
        assert (await api.get(f"/v1/payments/{pid}")).json()["status"] == "captured"
        assert [(o["type"], o["status"]) for o in await api.bank_ops(pid)] == [
            ("authentication", "succeeded"), ("authorization", "succeeded"), ("capture", "succeeded")]


async def test_a_crash_after_the_bank_opened_the_challenge_is_resolved_by_the_worker(make_stack: MakeStack) -> None:
    """Nobody retries: the worker's inquiry records the challenge page (and the event), and completes the key."""
    stack = make_stack(PAYGATE_IDEMPOTENCY_LOCK_S="2")
    m = stack.merchant()
    key = new_key()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        _arm(stack, "after_bank_authentication")
        with pytest.raises(httpx.TransportError):
            await api.pay(5000, method=challenge_card(), key=key)
        _arm(stack, None)
        [(pid,)] = _rows(stack, "SELECT id FROM payments")

        async def recorded() -> bool:
            return _rows(stack, "SELECT challenge_url IS NOT NULL FROM payments WHERE id = %s", pid) == [(True,)]

        await eventually(recorded, within_s=90, interval=0.2)
        p = (await api.get(f"/v1/payments/{pid}")).json()
        assert p["status"] == "requires_action" and p["next_action"] is not None

        async def completed() -> bool:
            rows = _rows(stack, "SELECT response_status FROM idempotency_keys WHERE key = %s", key)
            return bool(rows and rows[0][0] == 201)

        await eventually(completed, within_s=30, interval=0.2)
        again = await api.pay(5000, method=challenge_card(), key=key)
        assert again.status_code == 201 and again.json()["id"] == pid and again.json()["next_action"] is not None


@pytest.mark.parametrize("point", ["after_authentication_result", "after_bank_authorize"])
async def test_a_crash_between_the_challenge_and_the_authorization_is_finished_once_by_the_worker(
    make_stack: MakeStack, point: str,
) -> None:
    """The browser's return dies after committing the passed challenge (before sending the authorization), or after
    the bank authorized and captured (before paygate recorded it). The callback is held back so that the browser's
    return is the one that applies the result. The worker sends the authorization again with its key: the bank
    authorized once, and the payment is captured once."""
    stack = make_stack()
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api, Browser() as browser:
        assert api.bank is not None
        await api.bank.put("/v1/faults", json={"callback_delay_ms": "120000-120000"})
        r = await api.pay(5000, method=challenge_card())
        p = r.json()
        _arm(stack, point)
        with pytest.raises(httpx.TransportError):
            await browser.follow(await browser.answer(challenge_url(p), "123456"))
        _arm(stack, None)
        assert _rows(stack, "SELECT status FROM payments WHERE id = %s", p["id"]) == [("pending",)]
        done = await _status(api, p["id"], "captured")
        assert done["amount_captured"] == 5000
        assert [(o["type"], o["status"]) for o in await api.bank_ops(p["id"])] == [
            ("authentication", "succeeded"), ("authorization", "succeeded"), ("capture", "succeeded")]
        assert _rows(stack, "SELECT count(*) FROM events WHERE type = 'payment.captured'") == [(1,)]
        assert _rows(stack, "SELECT count(*) FROM ledger_journals WHERE payment_id = %s", p["id"]) == [(1,)]
