"""POST /v1/webhook_endpoints/{id}/test and `legacy_signature` endpoints (API.md §11 v2) over HTTP, with
real receivers: the test event goes to that endpoint alone through the normal delivery path, and a legacy
endpoint gets X-Webhook-Signature (hex HMAC-SHA256 of the body keyed with the secret string) beside the
Standard Webhooks headers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.procs import MakeStack, Stack
from tests.e2e.test_webhooks_receiver import Client, Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


@pytest.fixture
def api_stack(make_stack: MakeStack) -> Stack:
    return make_stack(PAYGATE_WEBHOOK_RETRY_SCHEDULE="0,60")


@pytest.fixture
def client(api_stack: Stack) -> Iterator[Client]:
    c = Client(api_stack.api_url, api_stack.merchant()["secret_key"])
    yield c
    c.close()


def _error(r: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err.get("param") == param, err


def hex_hmac(secret: str, body: bytes) -> str:
    """What seed 001's and 004's receivers compute."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_test_webhook_goes_to_that_endpoint_alone_and_is_logged(
    client: Client, receiver: Receiver, api_stack: Stack,
) -> None:
    target = client.endpoint(receiver.url("/target"), ["payment.captured"])
    other = client.endpoint(receiver.url("/other"))  # "*": every event type — still never webhook.test

    r = client.http.post(f"/v1/webhook_endpoints/{target['id']}/test", headers={"Idempotency-Key": "test-1"})
    assert r.status_code == 202, r.text
    delivery = r.json()
    assert delivery["object"] == "webhook_delivery" and delivery["id"].startswith("wd_")
    assert (delivery["endpoint_id"], delivery["event_type"], delivery["status"]) == (target["id"], "webhook.test",
                                                                                     "pending")
    replay = client.http.post(f"/v1/webhook_endpoints/{target['id']}/test", headers={"Idempotency-Key": "test-1"})
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.content == r.content

    [got] = receiver.wait("/target", 1)
    event = got.verify(target["secret"])  # signed like every delivery (standardwebhooks verifies it)
    assert event["type"] == "webhook.test" and event["id"] == delivery["event_id"] == got.webhook_id
    shown = client.ok("GET", f"/v1/webhook_endpoints/{target['id']}")
    assert event["data"]["object"] == shown and "secret" not in event["data"]["object"]
    assert "x-webhook-signature" not in got.headers  # not a legacy endpoint

    done = client.delivery_when(lambda d: d["status"] == "succeeded", endpoint_id=target["id"])
    assert done["id"] == delivery["id"] and len(done["attempts"]) == 1
    assert done["attempts"][0]["response_status"] == 200
    assert client.ok("GET", f"/v1/events/{delivery['event_id']}")["type"] == "webhook.test"
    assert [e["id"] for e in client.ok("GET", "/v1/events", type="webhook.test")["data"]] == [delivery["event_id"]]

    # The other endpoint got nothing, even though it takes every event type; then a real event reaches both.
    assert client.deliveries(endpoint_id=other["id"]) == []
    assert receiver.at("/other") == []
    payment = client.pay()
    [captured] = receiver.wait("/other", 1)
    assert captured.verify(other["secret"])["data"]["object"]["id"] == payment["id"]
    assert [x.event()["type"] for x in receiver.wait("/target", 2)] == ["webhook.test", "payment.captured"]


def test_test_webhooks_are_refused_where_they_cannot_go(client: Client, api_stack: Stack) -> None:
    post = client.http.post
    _error(post("/v1/webhook_endpoints", json={"url": "https://example.com/h", "enabled_events": ["webhook.test"]}),
           400, "parameter_invalid", "enabled_events")
    ep = client.endpoint("https://example.com/h")
    _error(client.http.patch(f"/v1/webhook_endpoints/{ep['id']}", json={"enabled_events": ["webhook.test"]}),
           400, "parameter_invalid", "enabled_events")
    _error(post("/v1/webhook_endpoints/we_unknown123/test"), 404, "resource_missing")
    _error(post(f"/v1/webhook_endpoints/{ep['id']}/test", json={"x": 1}), 400, "parameter_unknown")

    # another merchant's endpoint is as unknown as a missing one
    other = Client(api_stack.api_url, api_stack.merchant()["secret_key"])
    try:
        _error(other.http.post(f"/v1/webhook_endpoints/{ep['id']}/test"), 404, "resource_missing")
    finally:
        other.close()

    # a disabled endpoint receives nothing until re-enabled (§8): the test is refused, nothing is queued
    client.ok("PATCH", f"/v1/webhook_endpoints/{ep['id']}", {"disabled": True})
    _error(post(f"/v1/webhook_endpoints/{ep['id']}/test"), 409, "endpoint_disabled")
    assert client.deliveries(endpoint_id=ep["id"]) == []


def test_legacy_signature_endpoints_also_get_a_hex_hmac_of_the_body(client: Client, receiver: Receiver) -> None:
    plain = client.endpoint(receiver.url("/plain"))
    assert plain["legacy_signature"] is False
    legacy = client.ok("POST", "/v1/webhook_endpoints", {"url": receiver.url("/legacy"), "enabled_events": ["*"],
                                                         "legacy_signature": True}, 201)
    assert legacy["legacy_signature"] is True
    assert client.ok("GET", f"/v1/webhook_endpoints/{legacy['id']}")["legacy_signature"] is True
    _error(client.http.post("/v1/webhook_endpoints", json={"url": receiver.url("/x"), "enabled_events": ["*"],
                                                           "legacy_signature": "yes"}), 400, "parameter_invalid",
           "legacy_signature")

    client.pay()
    [got] = receiver.wait("/legacy", 1)
    assert got.headers["x-webhook-signature"] == hex_hmac(legacy["secret"], got.body)
    assert got.verify(legacy["secret"])["type"] == "payment.captured"  # the Standard Webhooks headers too
    [plain_got] = receiver.wait("/plain", 1)
    assert "x-webhook-signature" not in plain_got.headers

    # PATCH turns it on and off
    on = client.ok("PATCH", f"/v1/webhook_endpoints/{plain['id']}", {"legacy_signature": True})
    assert on["legacy_signature"] is True
    off = client.ok("PATCH", f"/v1/webhook_endpoints/{legacy['id']}", {"legacy_signature": False})
    assert off["legacy_signature"] is False
    _error(client.http.patch(f"/v1/webhook_endpoints/{plain['id']}", json={"legacy_signature": None}), 400,
           "parameter_invalid", "legacy_signature")
    client.http.post(f"/v1/webhook_endpoints/{plain['id']}/test").raise_for_status()
    client.http.post(f"/v1/webhook_endpoints/{legacy['id']}/test").raise_for_status()
    test_plain = receiver.wait("/plain", 2)[1]
    test_legacy = receiver.wait("/legacy", 2)[1]
    assert test_plain.event()["type"] == test_legacy.event()["type"] == "webhook.test"
    assert test_plain.headers["x-webhook-signature"] == hex_hmac(plain["secret"], test_plain.body)
    assert "x-webhook-signature" not in test_legacy.headers

    # During a rotation both secrets sign the Standard Webhooks header; the legacy header has room for one:
    # the newest secret's.
    rotated = client.ok("POST", f"/v1/webhook_endpoints/{plain['id']}/rotate_secret")
    client.http.post(f"/v1/webhook_endpoints/{plain['id']}/test").raise_for_status()
    after = receiver.wait("/plain", 3)[2]
    assert after.headers["x-webhook-signature"] == hex_hmac(rotated["secret"], after.body)
    assert after.verifies(plain["secret"]) and after.verifies(rotated["secret"])
