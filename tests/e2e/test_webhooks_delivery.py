"""Webhooks end to end: bank, API and worker as processes, a real receiver verifying every request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest

from tests.e2e.procs import MakeStack, Stack
from tests.e2e.test_webhooks_receiver import DECLINED, Client, Receiver, Reply, running_receiver
from tests.polling import wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()

FAST = "0,1,1,1"  # 4 attempts about a second apart


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def fast_stack(make_stack: MakeStack) -> Stack:
    return make_stack(PAYGATE_WEBHOOK_RETRY_SCHEDULE=FAST, PAYGATE_WORKER_POLL_S="0.2")


@pytest.fixture
def client(fast_stack: Stack) -> Iterator[Client]:
    merchant = fast_stack.merchant()
    c = Client(fast_stack.api_url, merchant["secret_key"])
    yield c
    c.close()


def test_events_reach_subscribed_endpoints_signed_and_identical_to_the_event(
    client: Client, receiver: Receiver
) -> None:
    every = client.endpoint(receiver.url("/all"))
    captured_only = client.endpoint(receiver.url("/captured"), ["payment.captured"])
    refunds_only = client.endpoint(receiver.url("/refunds"), ["refund.succeeded", "refund.failed"])
    assert every["secret"].startswith("whsec_") and every["object"] == "webhook_endpoint"

    captured = client.pay()
    authorized = client.pay(capture_method="manual")
    failed = client.pay(DECLINED)
    assert (captured["status"], authorized["status"], failed["status"]) == ("captured", "authorized", "failed")
    refund = client.ok("POST", "/v1/refunds", {"payment_id": captured["id"]}, 201)

    got_all = receiver.wait("/all", 4)
    got_captured = receiver.wait("/captured", 1)
    got_refunds = receiver.wait("/refunds", 1)
    types = sorted(r.verify(every["secret"])["type"] for r in got_all)
    assert types == ["payment.authorized", "payment.captured", "payment.failed", "refund.succeeded"]
    assert got_captured[0].verify(captured_only["secret"])["data"]["object"]["id"] == captured["id"]
    assert got_refunds[0].verify(refunds_only["secret"])["data"]["object"]["id"] == refund["id"]
    assert not got_captured[0].verifies(every["secret"])  # each endpoint has its own secret

    for r in got_all:
        event = r.event()
        assert r.webhook_id == event["id"]
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"].startswith("paygate")
        assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
        assert event == client.ok("GET", f"/v1/events/{event['id']}")  # the body is the event object

    # the deliveries, as the merchant sees them
    for ep, count in ((every, 4), (captured_only, 1), (refunds_only, 1)):
        assert len(client.deliveries(endpoint_id=ep["id"])) == count

    def all_succeeded() -> bool:
        return all(d["status"] == "succeeded" for d in client.deliveries())

    assert wait_for(all_succeeded, 10)  # the receiver has them; recording follows the answer
    d = client.deliveries(endpoint_id=captured_only["id"])[0]
    assert d["object"] == "webhook_delivery" and d["id"].startswith("wd_")
    assert d["event_type"] == "payment.captured" and d["next_attempt_at"] is None
    assert len(d["attempts"]) == 1
    attempt = d["attempts"][0]
    assert attempt["response_status"] == 200 and attempt["error"] is None and attempt["duration_ms"] >= 0
    assert client.ok("GET", f"/v1/webhook_deliveries/{d['id']}") == d
    assert [x["id"] for x in client.deliveries(event_id=d["event_id"])] == sorted(
        [x["id"] for x in client.deliveries(event_id=d["event_id"])], reverse=True)
    assert {x["endpoint_id"] for x in client.deliveries(event_id=d["event_id"])} == {every["id"], captured_only["id"]}
    assert client.deliveries(status="failed") == []
    assert len(client.deliveries(status="succeeded")) == 6


def test_failed_attempts_are_retried_on_schedule_until_success(client: Client, receiver: Receiver) -> None:
    receiver.on("/flaky", Reply(500), Reply(502))
    ep = client.endpoint(receiver.url("/flaky"))
    client.pay()
    got = receiver.wait("/flaky", 3)
    assert [r.status for r in got] == [500, 502, 200]
    assert len({r.webhook_id for r in got}) == 1  # the same id on every attempt: receivers dedupe on it
    assert all(r.verifies(ep["secret"]) for r in got)
    # each retry about a second (±20 %) after the previous attempt; polling may add a little
    gaps = [b.at - a.at for a, b in pairwise(got)]
    assert all(0.75 <= g <= 5.0 for g in gaps), gaps

    d = client.delivery_when(lambda d: d["status"] == "succeeded", endpoint_id=ep["id"])
    assert [a["response_status"] for a in d["attempts"]] == [500, 502, 200]
    assert d["attempts"][0]["error"] and d["attempts"][2]["error"] is None


def test_last_failed_attempt_fails_the_delivery_and_a_manual_retry_redelivers(
    client: Client, receiver: Receiver
) -> None:
    receiver.on_call("/down", lambda n: Reply(500) if n < 4 else Reply(200))
    ep = client.endpoint(receiver.url("/down"))
    client.pay()
    d = client.delivery_when(lambda d: d["status"] == "failed", endpoint_id=ep["id"])
    assert len(d["attempts"]) == 4 and d["next_attempt_at"] is None  # exactly as many attempts as delays
    assert len(receiver.at("/down")) == 4
    queue = client.ok("GET", "/v1/queue")
    assert queue["webhook_deliveries"]["failed"] == 1 and queue["webhook_deliveries"]["pending"] == 0

    retried = client.ok("POST", f"/v1/webhook_deliveries/{d['id']}/retry")
    assert retried["status"] == "succeeded" and len(retried["attempts"]) == 5
    assert retried["attempts"][-1]["response_status"] == 200
    assert receiver.at("/down")[-1].verify(ep["secret"])["id"] == d["event_id"]

    # a manual retry's outcome sets the status, also downwards; it is replayed under its Idempotency-Key
    receiver.on("/down", then=Reply(500))
    r1 = client.http.post(f"/v1/webhook_deliveries/{d['id']}/retry", headers={"Idempotency-Key": "retry-1"})
    r2 = client.http.post(f"/v1/webhook_deliveries/{d['id']}/retry", headers={"Idempotency-Key": "retry-1"})
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["status"] == "failed" and r2.content == r1.content
    assert r2.headers["idempotent-replayed"] == "true"
    assert len(receiver.at("/down")) == 6


def test_410_disables_the_endpoint_until_it_is_enabled_again(client: Client, receiver: Receiver) -> None:
    receiver.on("/gone", Reply(410))
    ep = client.endpoint(receiver.url("/gone"))
    other = client.endpoint(receiver.url("/other"))
    client.pay()
    d = client.delivery_when(lambda d: d["status"] == "failed", endpoint_id=ep["id"])
    assert len(d["attempts"]) == 1 and d["attempts"][0]["response_status"] == 410
    assert client.ok("GET", f"/v1/webhook_endpoints/{ep['id']}")["disabled"] is True

    client.pay()  # while disabled: nothing is queued for it; the other endpoint gets both events
    receiver.wait("/other", 2)
    assert len(client.deliveries(endpoint_id=ep["id"])) == 1
    refused = client.http.post(f"/v1/webhook_deliveries/{d['id']}/retry")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "endpoint_disabled"

    enabled = client.ok("PATCH", f"/v1/webhook_endpoints/{ep['id']}", {"disabled": False})
    assert enabled["disabled"] is False
    receiver.on("/gone", Reply(200))
    third = client.pay()
    got = receiver.wait("/gone", 2)
    assert got[-1].verify(ep["secret"])["data"]["object"]["id"] == third["id"]
    assert len(receiver.wait("/other", 3)) == 3
    assert other["id"] != ep["id"]


def test_rotated_secret_signs_beside_the_previous_one(client: Client, receiver: Receiver) -> None:
    ep = client.endpoint(receiver.url("/rot"))
    client.pay()
    first = receiver.wait("/rot", 1)[0]
    assert len(first.headers["webhook-signature"].split(" ")) == 1

    rotated = client.ok("POST", f"/v1/webhook_endpoints/{ep['id']}/rotate_secret")
    assert rotated["id"] == ep["id"] and rotated["secret"].startswith("whsec_") and rotated["secret"] != ep["secret"]
    assert "secret" not in client.ok("GET", f"/v1/webhook_endpoints/{ep['id']}")
    client.pay()
    second = receiver.wait("/rot", 2)[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 2
    assert second.verifies(ep["secret"]) and second.verifies(rotated["secret"])

    again = client.ok("POST", f"/v1/webhook_endpoints/{ep['id']}/rotate_secret")
    client.pay()
    third = receiver.wait("/rot", 3)[2]
    assert third.verifies(again["secret"]) and third.verifies(rotated["secret"])
    assert not third.verifies(ep["secret"])  # only the newest previous secret stays valid


def test_a_hanging_receiver_does_not_hold_up_other_endpoints(
    make_stack: MakeStack, receiver: Receiver
) -> None:
    stack = make_stack(PAYGATE_WEBHOOK_RETRY_SCHEDULE="0,60")
    c = Client(stack.api_url, stack.merchant()["secret_key"])
    try:
        receiver.on("/slow", then=Reply(200, delay_s=12))
        c.endpoint(receiver.url("/slow"))
        c.endpoint(receiver.url("/fast"))
        paid: list[dict[str, Any]] = [c.pay() for _ in range(40)]  # 40 slow deliveries: more than the slots
        got = receiver.wait("/fast", len(paid), timeout=30)
        lags = [r.at - _ts(r.event()["created_at"]) for r in got]
        assert max(lags) < 6, lags  # never queued behind the 12 s answers
    finally:
        c.close()
