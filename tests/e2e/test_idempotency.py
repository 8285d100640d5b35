"""Idempotency keys (API.md §4) against the real processes, including a crash between the bank call and
the final commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.client import Api, card, new_key
from tests.e2e.procs import MakeStack, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def api(shared_stack: Stack) -> AsyncIterator[Api]:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as a:
        yield a


def count(database_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


async def test_replay_is_byte_identical_and_marked(api: Api) -> None:
    key = new_key()
    first = await api.pay(2500, key=key)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = await api.pay(2500, key=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["request-id"] != first.headers["request-id"]
    # the same body with keys in another order is the same request
    reordered = await api.post("/v1/payments", {"payment_method": card(), "currency": "USD", "amount": 2500}, key=key)
    assert reordered.status_code == 201 and reordered.content == first.content
    listed = (await api.get("/v1/payments")).json()["data"]
    assert len(listed) == 1


async def test_declines_are_stored_and_replayed(api: Api) -> None:
    key = new_key()
    first = await api.pay(1000, method=card("4000000000000002"), key=key)
    assert first.status_code == 402
    again = await api.pay(1000, method=card("4000000000000002"), key=key)
    assert again.status_code == 402 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    pid = first.json()["error"]["payment"]["id"]
    assert len(await api.bank_ops(pid)) == 1


async def test_key_reused_with_another_request_is_422(api: Api) -> None:
    key = new_key()
    assert (await api.pay(1000, key=key)).status_code == 201
    other = await api.pay(1001, key=key)
    assert other.status_code == 422
    assert other.json()["error"]["type"] == "idempotency_error"
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    elsewhere = await api.post("/v1/refunds", {"payment_id": "pay_x"}, key=key)
    assert elsewhere.status_code == 422
    assert len((await api.get("/v1/payments")).json()["data"]) == 1


async def test_validation_errors_are_not_stored(api: Api) -> None:
    key = new_key()
    bad = await api.pay(0, key=key)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "amount"
    good = await api.pay(1000, key=key)  # the same key with a different, valid body runs afresh
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers


async def test_not_found_and_invalid_state_are_stored(api: Api) -> None:
    key = new_key()
    r = await api.post("/v1/payments/pay_missing/capture", key=key)
    assert r.status_code == 404
    again = await api.post("/v1/payments/pay_missing/capture", key=key)
    assert again.status_code == 404 and again.headers["idempotent-replayed"] == "true"
    pid = (await api.pay(1000)).json()["id"]
    key2 = new_key()
    first = await api.post(f"/v1/payments/{pid}/void", key=key2)
    assert first.status_code == 409
    assert (await api.post(f"/v1/payments/{pid}/void", key=key2)).content == first.content


async def test_key_too_long_is_400(api: Api) -> None:
    r = await api.pay(1000, key="k" * 256)
    assert r.status_code == 400
    assert (await api.get("/v1/payments")).json()["data"] == []


async def test_ten_concurrent_duplicates_make_one_payment(api: Api) -> None:
    key = new_key()
    results = await asyncio.gather(*[api.pay(3000, key=key, capture_method="manual") for _ in range(10)])
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in results if r.status_code == 201]
    assert created, statuses
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_key_in_use"
            assert int(r.headers["retry-after"]) >= 1
    assert len({r.content for r in created}) == 1
    pid = created[0].json()["id"]
    assert [p["id"] for p in (await api.get("/v1/payments")).json()["data"]] == [pid]
    ops = await api.bank_ops(pid)
    assert [o["type"] for o in ops] == ["authorization"]
    # a late retry gets the same answer
    late = await api.pay(3000, key=key, capture_method="manual")
    assert late.status_code == 201 and late.content == created[0].content


@pytest.mark.parametrize(
    ("crash_point", "make", "retry"),
    [
        ("after_bank_authorize", "none", "create"),
        ("after_bank_capture", "manual", "capture"),
        ("after_bank_refund", "auto", "refund"),
    ],
)
async def test_crash_between_bank_call_and_commit_then_retry(
    make_stack: MakeStack, crash_point: str, make: str, retry: str
) -> None:
    """Kill the API (os._exit at the crash point) after the bank acted, restart it, retry with the same key:
    the bank has acted once and there is one object, in the right final state."""
    stack = make_stack(worker=False, PAYGATE_IDEMPOTENCY_LOCK_S="3")
    m = stack.merchant()
    api_proc = stack.procs["api"]
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        pid = None
        if make != "none":
            pid = (await api.pay(4000, capture_method="manual" if make == "manual" else "automatic")).json()["id"]
        # restart the API armed with the crash point
        api_proc.stop()
        api_proc.env["PAYGATE_CRASH_POINT"] = crash_point
        api_proc.start()
        key = new_key()

        async def call() -> httpx.Response:
            if retry == "create":
                return await api.pay(4000, key=key, capture_method="manual")
            if retry == "capture":
                return await api.post(f"/v1/payments/{pid}/capture", {"amount": 2500}, key=key)
            return await api.post("/v1/refunds", {"payment_id": pid, "amount": 1500}, key=key)

        with pytest.raises(httpx.TransportError):
            await call()
        api_proc.kill()  # reap the dead process group
        api_proc.env.pop("PAYGATE_CRASH_POINT")
        api_proc.start()
        # the lease of the dead request runs out; until then the key answers 409 with Retry-After
        for _ in range(60):
            r = await call()
            if r.status_code != 409:
                break
            assert r.json()["error"]["code"] == "idempotency_key_in_use"
            await asyncio.sleep(float(r.headers["retry-after"]))
        assert r.status_code in (200, 201), r.text
        obj = r.json()
        if retry == "create":
            pid = obj["id"]
            assert obj["status"] == "authorized"
            assert count(stack.database_url, "SELECT count(*) FROM payments") == 1
        assert pid is not None
        ops = await api.bank_ops(pid)
        kinds = [o["type"] for o in ops]
        if retry == "create":
            assert kinds == ["authorization"]
        elif retry == "capture":
            assert kinds == ["authorization", "capture"] and obj["amount_captured"] == 2500
        else:
            assert kinds.count("refund") == 1 and obj["status"] == "succeeded" and obj["amount"] == 1500
            assert count(stack.database_url, "SELECT count(*) FROM refunds") == 1
        again = await call()
        assert again.content == r.content and again.headers["idempotent-replayed"] == "true"
