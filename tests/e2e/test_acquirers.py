"""Several named banks (API.md §12 v2, §14) as real processes: each keeps its state apart, payments and
their later operations go to the payment's acquirer, callbacks are matched with it, and faults change at
run time through `{bank}/v1/faults`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from paygate.simbank import signing
from paygate.simbank.rules import new_id
from tests.e2e.procs import MakeStack, Stack
from tests.polling import poll

CARD: dict[str, Any] = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 6, "exp_year": 2030,
                                                 "cvc": "456"}}


class Two:
    """A merchant on a stack with acquirers alpha and beta, and a client per bank."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        merchant = stack.merchant()
        self.api = httpx.Client(base_url=stack.api_url, auth=(merchant["secret_key"], ""), timeout=30)
        self.banks = {name: httpx.Client(base_url=url, timeout=30) for name, url in stack.bank_urls.items()}

    def close(self) -> None:
        for client in (self.api, *self.banks.values()):
            client.close()

    def held(self, bank: str, number: str = "4242424242424242") -> int:
        r = self.banks[bank].get(f"/v1/cards/{number}")
        assert r.status_code == 200, r.text
        held: int = r.json()["held"]
        return held

    def ops(self, bank: str, reference: str) -> list[tuple[str, str]]:
        r = self.banks[bank].get("/v1/operations", params={"reference": reference})
        assert r.status_code == 200, r.text
        return [(o["type"], o["status"]) for o in r.json()["data"]]

    def pay(self, method: dict[str, Any] | None = None, **extra: Any) -> httpx.Response:
        return self.api.post("/v1/payments", json={"amount": 1_500, "currency": "USD",
                                                   "payment_method": method or CARD, **extra})

    def faults(self, bank: str, body: Any = None) -> httpx.Response:
        client = self.banks[bank]
        return client.get("/v1/faults") if body is None else client.put("/v1/faults", json=body)


@pytest.fixture
def two(make_stack: MakeStack) -> Iterator[Two]:
    shop = Two(make_stack(acquirers=("alpha", "beta")))
    yield shop
    shop.close()


def test_two_named_banks_keep_accounts_holds_and_operations_apart(two: Two) -> None:
    # one card, two banks: a hold at alpha (through paygate) is no hold at beta, and the other way round
    r = two.pay(capture_method="manual")
    assert r.status_code == 201, r.text
    p = r.json()
    assert (p["status"], p["acquirer"]) == ("authorized", "alpha")
    assert (two.held("alpha"), two.held("beta")) == (1_500, 0)
    direct = two.banks["beta"].post("/v1/authorizations", headers={"Idempotency-Key": new_id("key")}, json={
        "reference": "elsewhere_1", "amount": 700, "currency": "USD", "capture": False,
        "payment_method": {"type": "card", "card": dict(CARD["card"])}})
    assert direct.status_code == 200 and direct.json()["status"] == "succeeded", direct.text
    assert (two.held("alpha"), two.held("beta")) == (1_500, 700)
    assert two.ops("alpha", "elsewhere_1") == [] and two.ops("beta", p["id"]) == []
    # the capture goes to the payment's acquirer
    c = two.api.post(f"/v1/payments/{p['id']}/capture")
    assert c.status_code == 200 and c.json()["status"] == "captured", c.text
    assert two.ops("alpha", p["id"]) == [("authorization", "succeeded"), ("capture", "succeeded")]
    assert two.ops("beta", p["id"]) == []
    with psycopg.connect(two.stack.database_url) as conn:
        schemas = {row[0] for row in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bank%%'")}
        assert {"bank_alpha", "bank_beta"} <= schemas
        counts = [conn.execute(f"SELECT count(*) FROM {s}.authorizations").fetchone() for s in ("bank_alpha",
                                                                                              "bank_beta")]
    assert counts == [(1,), (1,)]


def test_a_callback_is_matched_with_the_acquirer_that_sent_it(two: Two) -> None:
    r = two.pay({"type": "upi", "upi": {"vpa": "success@upi"}})
    assert r.status_code == 201 and r.json()["acquirer"] == "alpha", r.text
    pid = r.json()["id"]
    event: dict[str, Any] = {
        "id": new_id("bevt"), "type": "operation.failed", "created_at": "2026-12-01T10:00:00.000000Z",
        "data": {"reference": pid, "operation": "capture", "amount": 1_500, "failure_code": "payment_declined"}}
    body = orjson.dumps(event)
    headers = {**signing.headers(two.stack.env["PAYGATE_BANK_WEBHOOK_SECRET"], event["id"], body),
               "content-type": "application/json"}
    with httpx.Client(base_url=two.stack.api_url, timeout=30) as public:
        stranger = public.post("/v1/bank/events", params={"acquirer": "beta"}, content=body, headers=headers)
        assert stranger.status_code == 200 and stranger.json()["outcome"] == "ignored", stranger.text
        unnamed = public.post("/v1/bank/events", content=body, headers=headers)  # two acquirers: who sent it?
        assert unnamed.status_code == 400 and unnamed.json()["error"]["param"] == "acquirer", unnamed.text
        unknown = public.post("/v1/bank/events", params={"acquirer": "gamma"}, content=body, headers=headers)
        assert unknown.status_code == 400, unknown.text
    # alpha's own callback (signed by the simulator, to the URL paygate handed it) settles the payment
    def settled() -> dict[str, Any] | None:
        p: dict[str, Any] = two.api.get(f"/v1/payments/{pid}").json()
        return p if p["status"] != "pending" else None

    final = poll(settled, within_s=30)
    assert (final["status"], final["acquirer"]) == ("captured", "alpha")


def test_faults_change_at_run_time_and_hit_operations_only(two: Two) -> None:
    assert two.faults("alpha").json() == {"object": "bank_faults", "failure_rate": 0.0, "lost_rate": 0.0,
                                          "latency_ms": "0-0", "duplicate_rate": 0.0, "callback_delay_ms": "0-0"}
    put = two.faults("alpha", {"failure_rate": 1, "latency_ms": "1-2"})
    assert put.status_code == 200 and put.json()["failure_rate"] == 1.0 and put.json()["latency_ms"] == "1-2"
    assert two.faults("beta").json()["failure_rate"] == 0.0  # each bank its own
    for bad in ({"failure_rate": 1.5}, {"lost_rate": "x"}, {"latency_ms": "9-3"}, {"nope": 1}, [1]):
        r = two.faults("alpha", bad)
        assert r.status_code == 400, (bad, r.text)
    assert two.faults("alpha").json()["latency_ms"] == "1-2"  # a refused PUT changed nothing
    # every authorization attempt now answers 500 without acting; the inquiry (never faulted) says so, and
    # the payment fails over to beta (API.md §14)
    started = time.monotonic()
    r = two.pay()
    assert r.status_code == 201 and r.json()["acquirer"] == "beta", r.text
    pid = r.json()["id"]
    assert two.ops("alpha", pid) == []  # inspection answers normally too
    assert [(a["acquirer"], a["result"]) for a in r.json()["acquirer_attempts"]] == [
        ("alpha", "unavailable"), ("beta", "succeeded")]
    assert time.monotonic() - started < 30
    assert two.faults("alpha", {"failure_rate": 0}).json()["failure_rate"] == 0.0
    ok = two.pay()
    assert ok.status_code == 201 and ok.json()["status"] == "captured", ok.text
