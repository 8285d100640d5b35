"""The payment core end to end: `paygate bank` and `paygate api` as processes, driven over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.client import Api, card
from tests.e2e.procs import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def api(shared_stack: Stack) -> AsyncIterator[Api]:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as a:
        yield a


# card, cvc, exp (month, year), capture, expected (status code, status or error code)
TEST_CARDS = [
    ("4111111111111111", "123", (12, 2030), 201, "captured"),
    ("4242424242424242", "456", (6, 2030), 201, "captured"),
    ("5555555555554444", "789", (9, 2030), 402, "insufficient_funds"),
    ("5105105105105100", "321", (3, 2020), 402, "expired_card"),
    ("4000000000000002", "123", (12, 2030), 402, "card_declined"),
    ("4000000000009995", "123", (12, 2030), 402, "insufficient_funds"),
    ("4000000000000127", "123", (12, 2030), 402, "incorrect_cvc"),
    ("4000000000000119", "123", (12, 2030), 402, "processing_error"),
    ("4012888888881881", "999", (1, 2031), 201, "captured"),  # any other Luhn-valid number
    ("4111111111111111", "999", (12, 2030), 402, "incorrect_cvc"),  # listed card, other CVC
    ("4111111111111111", "123", (11, 2031), 402, "expired_card"),  # listed card, other expiry
    ("4012888888881881", "123", (1, 2021), 402, "expired_card"),  # a past expiry, any card
]


@pytest.mark.parametrize(("number", "cvc", "exp", "status", "outcome"), TEST_CARDS)
async def test_every_test_card(api: Api, number: str, cvc: str, exp: tuple[int, int], status: int,
                               outcome: str) -> None:
    r = await api.pay(1000, method=card(number, exp[0], exp[1], cvc))
    assert r.status_code == status, r.text
    body = r.json()
    if status == 201:
        assert body["status"] == outcome
        assert body["amount_captured"] == 1000
        assert [h["status"] for h in body["status_history"]] == ["pending", "captured"]
        ops = await api.bank_ops(body["id"])
        assert sorted(o["type"] for o in ops) == ["authorization", "capture"]
    else:
        err = body["error"]
        assert err["type"] == "card_error" and err["code"] == outcome
        payment = err["payment"]
        assert payment["status"] == "failed" and payment["failure_code"] == outcome
        assert payment["amount_capturable"] == 0
        fetched = (await api.get(f"/v1/payments/{payment['id']}")).json()
        assert fetched["status"] == "failed"
        assert all(o["status"] == "failed" for o in await api.bank_ops(payment["id"]))
    assert number not in r.text and f'"{cvc}"' not in r.text


async def test_insufficient_funds_counts_holds(api: Api) -> None:
    # 4242… holds 500.00: a 400.00 hold leaves 100.00 available
    held = await api.pay(40_000, method=card("4242424242424242", 6, 2030, "456"), capture_method="manual")
    assert held.status_code == 201 and held.json()["status"] == "authorized"
    over = await api.pay(20_000, method=card("4242424242424242", 6, 2030, "456"))
    assert over.status_code == 402 and over.json()["error"]["code"] == "insufficient_funds"
    void = await api.post(f"/v1/payments/{held.json()['id']}/void")
    assert void.json()["status"] == "voided"
    again = await api.pay(20_000, method=card("4242424242424242", 6, 2030, "456"))
    assert again.status_code == 201


async def test_manual_capture_partial_then_refunds(api: Api) -> None:
    before = await api.bank_card("4012888888881881")
    r = await api.pay(10_000, method=card("4012888888881881", 1, 2031, "999"), capture_method="manual",
                      customer_id="cust-1", metadata={"order": "42"})
    p = r.json()
    assert p["status"] == "authorized" and p["amount_capturable"] == 10_000
    assert p["authorization_expires_at"] is not None
    mid = await api.bank_card("4012888888881881")
    assert mid["held"] - before["held"] == 10_000

    c = await api.post(f"/v1/payments/{p['id']}/capture", {"amount": 6_000})
    assert c.status_code == 200, c.text
    cap = c.json()
    assert cap["status"] == "captured" and cap["amount_captured"] == 6_000 and cap["amount_capturable"] == 0
    assert cap["authorization_expires_at"] is None
    assert [h["status"] for h in cap["status_history"]] == ["pending", "authorized", "capturing", "captured"]
    after = await api.bank_card("4012888888881881")
    assert after["held"] == before["held"] and after["captured"] - before["captured"] == 6_000

    r1 = await api.post("/v1/refunds", {"payment_id": p["id"], "amount": 1_000, "reason": "requested_by_customer"})
    assert r1.status_code == 201 and r1.json()["status"] == "succeeded"
    assert r1.json()["object"] == "refund" and r1.json()["currency"] == "USD"
    mid_p = (await api.get(f"/v1/payments/{p['id']}")).json()
    assert mid_p["status"] == "partially_refunded" and mid_p["amount_refunded"] == 1_000
    rest = await api.post("/v1/refunds", {"payment_id": p["id"]})
    assert rest.status_code == 201 and rest.json()["amount"] == 5_000
    done = (await api.get(f"/v1/payments/{p['id']}")).json()
    assert done["status"] == "refunded" and done["amount_refunded"] == 6_000
    over = await api.post("/v1/refunds", {"payment_id": p["id"], "amount": 1})
    assert over.status_code == 409 and over.json()["error"]["code"] == "amount_exceeds_refundable"
    listed = (await api.get("/v1/refunds", payment_id=p["id"])).json()
    assert [x["amount"] for x in listed["data"]] == [5_000, 1_000]
    bank_refunded = (await api.bank_card("4012888888881881"))["refunded"] - before["refunded"]
    assert bank_refunded == 6_000


INVALID = [
    # (setup: capture_method, then actions already applied), action, expected code
    ("automatic", [], "capture", "payment_not_capturable"),
    ("automatic", [], "void", "payment_not_voidable"),
    ("manual", [], "refund", "payment_not_refundable"),
    ("manual", ["void"], "capture", "payment_not_capturable"),
    ("manual", ["void"], "void", "payment_not_voidable"),
    ("manual", ["void"], "refund", "payment_not_refundable"),
    ("manual", ["capture"], "capture", "payment_not_capturable"),
    ("manual", ["capture"], "void", "payment_not_voidable"),
    ("automatic", ["refund"], "refund", "amount_exceeds_refundable"),
    ("automatic", ["refund"], "capture", "payment_not_capturable"),
    ("failed", [], "capture", "payment_not_capturable"),
    ("failed", [], "void", "payment_not_voidable"),
    ("failed", [], "refund", "payment_not_refundable"),
]


async def _act(api: Api, pid: str, action: str) -> httpx.Response:
    if action == "refund":
        return await api.post("/v1/refunds", {"payment_id": pid})
    return await api.post(f"/v1/payments/{pid}/{action}")


@pytest.mark.parametrize(("setup", "done", "action", "code"), INVALID)
async def test_invalid_transitions(api: Api, setup: str, done: list[str], action: str, code: str) -> None:
    if setup == "failed":
        r = await api.pay(1000, method=card("4000000000000002"))
        pid = r.json()["error"]["payment"]["id"]
    else:
        pid = (await api.pay(1000, capture_method=setup)).json()["id"]
    for step in done:
        assert (await _act(api, pid, step)).status_code in (200, 201)
    before = (await api.get(f"/v1/payments/{pid}")).json()
    r = await _act(api, pid, action)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == {**r.json()["error"], "type": "invalid_state_error", "code": code}
    assert (await api.get(f"/v1/payments/{pid}")).json() == before  # nothing changed


async def test_capture_more_than_capturable(api: Api) -> None:
    pid = (await api.pay(1000, capture_method="manual")).json()["id"]
    r = await api.post(f"/v1/payments/{pid}/capture", {"amount": 1001})
    assert r.status_code == 409 and r.json()["error"]["code"] == "amount_exceeds_capturable"
    assert (await api.get(f"/v1/payments/{pid}")).json()["status"] == "authorized"


async def test_twenty_concurrent_partial_refunds_never_overshoot(api: Api) -> None:
    pid = (await api.pay(10_000)).json()["id"]
    results = await asyncio.gather(*[api.post("/v1/refunds", {"payment_id": pid, "amount": 700}) for _ in range(20)])
    ok = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code == 409]
    assert len(ok) == 14 and len(refused) == 6  # 14 * 700 = 9,800 <= 10,000 < 15 * 700
    assert all(r.json()["error"]["code"] == "amount_exceeds_refundable" for r in refused)
    p = (await api.get(f"/v1/payments/{pid}")).json()
    assert p["amount_refunded"] == 9_800 and p["status"] == "partially_refunded"
    bank_refunds = [o for o in await api.bank_ops(pid) if o["type"] == "refund"]
    assert sum(o["amount"] for o in bank_refunds) == 9_800


async def test_foreign_and_unknown_ids_are_404(shared_stack: Stack, api: Api) -> None:
    stack = shared_stack
    pid = (await api.pay(1000, capture_method="manual")).json()["id"]
    other = stack.merchant()
    async with Api(stack.api_url, other["secret_key"]) as them:
        for r in (await them.get(f"/v1/payments/{pid}"), await them.post(f"/v1/payments/{pid}/capture"),
                  await them.post("/v1/refunds", {"payment_id": pid}), await them.get("/v1/payments/pay_nope")):
            assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
        assert (await them.get("/v1/payments")).json()["data"] == []
    assert (await api.get(f"/v1/payments/{pid}")).json()["status"] == "authorized"


async def test_list_filters_and_pagination(api: Api) -> None:
    ids = [(await api.pay(100 + i, customer_id="c-a" if i % 2 else "c-b")).json()["id"] for i in range(5)]
    failed = (await api.pay(100, method=card("4000000000000002"))).json()["error"]["payment"]["id"]
    page1 = (await api.get("/v1/payments", limit=3)).json()
    assert page1["object"] == "list" and page1["has_more"] is True
    assert [p["id"] for p in page1["data"]] == [failed, ids[4], ids[3]]
    page2 = (await api.get("/v1/payments", limit=3, starting_after=page1["data"][-1]["id"])).json()
    assert [p["id"] for p in page2["data"]] == [ids[2], ids[1], ids[0]] and page2["has_more"] is False
    assert [p["id"] for p in (await api.get("/v1/payments", status="failed")).json()["data"]] == [failed]
    assert {p["id"] for p in (await api.get("/v1/payments", customer_id="c-a")).json()["data"]} == {ids[1], ids[3]}
    created = page1["data"][1]["created_at"]
    newer = (await api.get("/v1/payments", created_gte=created)).json()["data"]
    assert [p["id"] for p in newer] == [failed, ids[4]]
    older = (await api.get("/v1/payments", created_lt=created)).json()["data"]
    assert [p["id"] for p in older] == [ids[3], ids[2], ids[1], ids[0]]
    for bad in ({"limit": 0}, {"limit": 101}, {"created_gte": "yesterday"}, {"status": "nope"}):
        r = await api.get("/v1/payments", **bad)
        assert r.status_code == 400 and r.json()["error"]["param"] == next(iter(bad))
