"""An order is paid at most once: its payments are serialised by the order's row lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.e2e.client import Api
from tests.e2e.procs import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def api(shared_stack: Stack) -> AsyncIterator[Api]:
    m = shared_stack.merchant()
    async with Api(shared_stack.api_url, m["secret_key"], shared_stack.bank_url) as a:
        yield a


async def test_one_payment_at_a_time_and_never_paid_twice(api: Api) -> None:
    order = (await api.post("/v1/orders", {"amount": 2000, "currency": "INR"})).json()
    held = await api.post("/v1/payments", {"order_id": order["id"], "capture_method": "manual",
                                           "payment_method": {"type": "card", "card": {
                                               "number": "4111111111111111", "exp_month": 12, "exp_year": 2030,
                                               "cvc": "123"}}})
    assert held.status_code == 201 and held.json()["status"] == "authorized"
    second = await api.post("/v1/payments", {"order_id": order["id"], "payment_method": {
        "type": "upi", "upi": {"vpa": "success@upi"}}})
    assert second.status_code == 409 and second.json()["error"]["code"] == "order_payment_in_progress"
    assert (await api.post(f"/v1/payments/{held.json()['id']}/void")).json()["status"] == "voided"

    # two customers racing to pay the same order: exactly one payment is taken
    racers = await asyncio.gather(*[api.post("/v1/payments", {"order_id": order["id"], "payment_method": {
        "type": "card", "card": {"number": "4012888888881881", "exp_month": 1, "exp_year": 2031, "cvc": "999"}}})
        for _ in range(5)])
    codes = sorted(r.status_code for r in racers)
    assert codes.count(201) == 1 and codes.count(409) == 4, codes
    paid = (await api.get(f"/v1/orders/{order['id']}")).json()
    assert paid["status"] == "paid" and paid["amount_paid"] == 2000
    late = await api.post("/v1/payments", {"order_id": order["id"], "payment_method": {
        "type": "upi", "upi": {"vpa": "success@upi"}}})
    assert late.status_code == 409 and late.json()["error"]["code"] == "order_already_paid"
