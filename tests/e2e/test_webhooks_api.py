"""The API of §8-§10 over HTTP: endpoints (validation, PATCH, DELETE, rotation), events, balance, ledger, queue."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.procs import MakeStack, Stack
from tests.e2e.test_webhooks_receiver import DECLINED, Client, Receiver, Reply, running_receiver
from tests.polling import wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


@pytest.fixture
def api_stack(make_stack: MakeStack) -> Stack:
    return make_stack(PAYGATE_WEBHOOK_RETRY_SCHEDULE="0,60", PAYGATE_FEE_BPS="290", PAYGATE_FEE_FIXED="30")


@pytest.fixture
def client(api_stack: Stack) -> Iterator[Client]:
    c = Client(api_stack.api_url, api_stack.merchant()["secret_key"])
    yield c
    c.close()


def _error(r: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    if param is not None:
        assert err.get("param") == param, err


def test_endpoint_create_validates_and_shows_the_secret_once(client: Client) -> None:
    post = client.http.post
    _error(post("/v1/webhook_endpoints", json={"enabled_events": ["*"]}), 400, "parameter_missing", "url")
    _error(post("/v1/webhook_endpoints", json={"url": "ftp://example.com/x", "enabled_events": ["*"]}),
           400, "parameter_invalid", "url")
    _error(post("/v1/webhook_endpoints", json={"url": "not a url", "enabled_events": ["*"]}),
           400, "parameter_invalid", "url")
    _error(post("/v1/webhook_endpoints", json={"url": "https://example.com/h", "enabled_events": ["payment.paid"]}),
           400, "parameter_invalid", "enabled_events")
    _error(post("/v1/webhook_endpoints", json={"url": "https://example.com/h", "enabled_events": []}),
           400, "parameter_invalid", "enabled_events")
    _error(post("/v1/webhook_endpoints", json={"url": "https://example.com/h", "enabled_events": ["*", "order.paid"]}),
           400, "parameter_invalid", "enabled_events")
    _error(post("/v1/webhook_endpoints", json={"url": "https://example.com/h"}), 400, "parameter_missing",
           "enabled_events")
    _error(post("/v1/webhook_endpoints", json={"url": "https://example.com/h", "enabled_events": ["*"], "x": 1}),
           400, "parameter_unknown", "x")

    ep = client.ok("POST", "/v1/webhook_endpoints", {"url": "https://example.com/h", "description": "orders",
                                                     "enabled_events": ["order.paid", "refund.failed"]}, 201)
    assert set(ep) == {"id", "object", "url", "enabled_events", "description", "disabled", "legacy_signature",
                       "created_at", "updated_at", "secret"}
    assert ep["id"].startswith("we_") and ep["object"] == "webhook_endpoint" and ep["disabled"] is False
    assert ep["enabled_events"] == ["order.paid", "refund.failed"] and ep["description"] == "orders"
    assert ep["secret"].startswith("whsec_") and len(base64.b64decode(ep["secret"][6:])) == 32
    shown = client.ok("GET", f"/v1/webhook_endpoints/{ep['id']}")
    assert "secret" not in shown and shown == {k: v for k, v in ep.items() if k != "secret"}

    # an Idempotency-Key replays the creation (with its secret) instead of making a second endpoint
    body = {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
    r1 = post("/v1/webhook_endpoints", json=body, headers={"Idempotency-Key": "ep-1"})
    r2 = post("/v1/webhook_endpoints", json=body, headers={"Idempotency-Key": "ep-1"})
    assert r1.status_code == r2.status_code == 201 and r1.content == r2.content
    assert r2.headers["idempotent-replayed"] == "true"
    _error(post("/v1/webhook_endpoints", json={**body, "description": "x"}, headers={"Idempotency-Key": "ep-1"}),
           422, "idempotency_key_reused")

    listed = client.ok("GET", "/v1/webhook_endpoints")
    assert listed["object"] == "list" and [e["id"] for e in listed["data"]] == [r1.json()["id"], ep["id"]]
    first = client.ok("GET", "/v1/webhook_endpoints", limit=1)
    assert first["has_more"] is True and first["data"][0]["id"] == r1.json()["id"]
    rest = client.ok("GET", "/v1/webhook_endpoints", limit=1, starting_after=r1.json()["id"])
    assert rest["has_more"] is False and rest["data"][0]["id"] == ep["id"]


def test_endpoint_patch_delete_and_isolation(client: Client, api_stack: Stack) -> None:
    ep = client.endpoint("https://example.com/a", ["payment.captured"])
    path = f"/v1/webhook_endpoints/{ep['id']}"
    _error(client.http.patch(path, json={"description": "no"}), 400, "parameter_unknown", "description")
    _error(client.http.patch(path, json={"secret": "whsec_x"}), 400, "parameter_unknown", "secret")
    _error(client.http.patch(path, json={"url": "mailto:a@b.c"}), 400, "parameter_invalid", "url")
    _error(client.http.patch(path, json={"url": None}), 400, "parameter_invalid", "url")
    _error(client.http.patch(path, json={"disabled": "yes"}), 400, "parameter_invalid", "disabled")
    _error(client.http.patch(path, json={"enabled_events": ["nope"]}), 400, "parameter_invalid", "enabled_events")

    patched = client.ok("PATCH", path, {"url": "http://example.org/b", "enabled_events": ["*"], "disabled": True})
    assert (patched["url"], patched["enabled_events"], patched["disabled"]) == ("http://example.org/b", ["*"], True)
    assert patched["updated_at"] > ep["updated_at"] and patched["created_at"] == ep["created_at"]
    assert client.ok("PATCH", path, {}) == patched  # nothing to change

    other = Client(api_stack.api_url, api_stack.merchant()["secret_key"])
    try:  # another merchant's endpoint is as unknown as a missing one
        for method in ("GET", "PATCH", "DELETE"):
            _error(other.http.request(method, path, json={} if method == "PATCH" else None), 404, "resource_missing")
        _error(other.http.post(f"{path}/rotate_secret"), 404, "resource_missing")
        assert other.ok("GET", "/v1/webhook_endpoints")["data"] == []
    finally:
        other.close()

    _error(client.http.post(f"{path}/rotate_secret", json={"expires": 1}), 400, "parameter_unknown")
    deleted = client.ok("DELETE", path)
    assert deleted == {"id": ep["id"], "object": "webhook_endpoint", "deleted": True}
    _error(client.http.get(path), 404, "resource_missing")
    _error(client.http.delete(path), 404, "resource_missing")
    assert client.ok("GET", "/v1/webhook_endpoints")["data"] == []
    _error(client.http.get("/v1/webhook_deliveries/wd_nope"), 404, "resource_missing")
    _error(client.http.post("/v1/webhook_deliveries/wd_nope/retry"), 404, "resource_missing")
    _error(client.http.get("/v1/webhook_deliveries", params={"status": "lost"}), 400, "parameter_invalid", "status")


def test_publishable_key_cannot_touch_webhooks_or_events(api_stack: Stack) -> None:
    pk = api_stack.merchant()["publishable_key"]
    with httpx.Client(base_url=api_stack.api_url, auth=(pk, "")) as http:
        for method, path in (("GET", "/v1/webhook_endpoints"), ("POST", "/v1/webhook_endpoints"),
                             ("GET", "/v1/events"), ("GET", "/v1/balance"), ("GET", "/v1/ledger_entries"),
                             ("GET", "/v1/queue"), ("GET", "/v1/webhook_deliveries")):
            r = http.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.text)
    assert httpx.get(f"{api_stack.api_url}/v1/events").status_code == 401


def test_deleting_an_endpoint_fails_what_it_still_had_pending(client: Client, receiver: Receiver) -> None:
    receiver.on("/err", then=Reply(500))
    ep = client.endpoint(receiver.url("/err"))
    client.pay()
    d = client.delivery_when(lambda d: len(d["attempts"]) == 1, endpoint_id=ep["id"])
    assert d["status"] == "pending" and d["next_attempt_at"] is not None  # the next attempt is a minute away
    q = client.ok("GET", "/v1/queue")
    assert q["webhook_deliveries"]["pending"] == 1 and q["webhook_deliveries"]["oldest_pending_age_s"] > 0
    assert q["outbox_lag_s"] == 0  # pending, but not yet due

    client.ok("DELETE", f"/v1/webhook_endpoints/{ep['id']}")
    gone = client.ok("GET", f"/v1/webhook_deliveries/{d['id']}")
    assert gone["status"] == "failed" and gone["next_attempt_at"] is None
    q = client.ok("GET", "/v1/queue")
    assert q["webhook_deliveries"] == {"pending": 0, "failed": 1, "oldest_pending_age_s": 0}
    retry = client.http.post(f"/v1/webhook_deliveries/{d['id']}/retry")
    _error(retry, 409, "endpoint_deleted")


def test_events_balance_ledger_and_queue(client: Client) -> None:
    captured = client.pay(amount=10_000)
    authorized = client.pay(capture_method="manual", amount=2_000)
    failed = client.pay(DECLINED)
    refund = client.ok("POST", "/v1/refunds", {"payment_id": captured["id"], "amount": 2_500}, 201)
    assert refund["status"] == "succeeded"

    events = client.ok("GET", "/v1/events", limit=100)["data"]
    assert [e["type"] for e in events] == ["refund.succeeded", "payment.failed", "payment.authorized",
                                           "payment.captured"]  # newest first
    for e in events:
        assert set(e) == {"id", "object", "type", "created_at", "data"} and e["object"] == "event"
        assert client.ok("GET", f"/v1/events/{e['id']}") == e
    assert events[1]["data"]["object"]["id"] == failed["id"]
    assert events[2]["data"]["object"] == {**authorized}  # the payment as it was right after the change
    only = client.ok("GET", "/v1/events", type="payment.captured")["data"]
    assert [e["data"]["object"]["id"] for e in only] == [captured["id"]]
    _error(client.http.get("/v1/events", params={"type": "payment.nope"}), 400, "parameter_invalid", "type")
    _error(client.http.get("/v1/events/evt_missing"), 404, "resource_missing")
    page1 = client.ok("GET", "/v1/events", limit=3)
    page2 = client.ok("GET", "/v1/events", limit=3, starting_after=page1["data"][-1]["id"])
    assert page1["has_more"] and not page2["has_more"]
    assert [e["id"] for e in page1["data"] + page2["data"]] == [e["id"] for e in events]
    cut = events[1]["created_at"]
    newer = client.ok("GET", "/v1/events", created_gte=cut)["data"]
    older = client.ok("GET", "/v1/events", created_lt=cut)["data"]
    assert [e["id"] for e in newer + older] == [e["id"] for e in events] and newer[-1]["id"] == events[1]["id"]
    _error(client.http.get("/v1/events", params={"created_gte": "yesterday"}), 400, "parameter_invalid",
           "created_gte")

    fee = (10_000 * 290 + 5_000) // 10_000 + 30
    balance = client.ok("GET", "/v1/balance")
    assert balance == {"object": "balance", "available": [{"amount": 10_000 - 2_500 - fee, "currency": "USD"}],
                       "settled": []}  # nothing settled by the bank yet (§18)

    entries = client.ok("GET", "/v1/ledger_entries", payment_id=captured["id"], limit=100)["data"]
    assert {e["object"] for e in entries} == {"ledger_entry"} and all(e["amount"] > 0 for e in entries)
    merchant = [e for e in entries if e["account"] == "merchant_balance"]
    net = sum(e["amount"] if e["direction"] == "credit" else -e["amount"] for e in merchant)
    assert net == balance["available"][0]["amount"]
    for journal in {e["journal_id"] for e in entries}:
        legs = [e for e in entries if e["journal_id"] == journal]
        assert sum(e["amount"] for e in legs if e["direction"] == "debit") == sum(
            e["amount"] for e in legs if e["direction"] == "credit")
    by_refund = client.ok("GET", "/v1/ledger_entries", refund_id=refund["id"])["data"]
    assert by_refund and all(e["refund_id"] == refund["id"] for e in by_refund)
    assert client.ok("GET", "/v1/ledger_entries", payment_id=authorized["id"])["data"] == []

    q = client.ok("GET", "/v1/queue")
    assert q == {"object": "queue", "webhook_deliveries": {"pending": 0, "failed": 0, "oldest_pending_age_s": 0},
                 "payments_in_flight": 0, "outbox_lag_s": 0}


def test_queue_counts_due_deliveries_while_no_worker_runs(make_stack: MakeStack) -> None:
    stack = make_stack(worker=False)
    client = Client(stack.api_url, stack.merchant()["secret_key"])
    try:
        client.endpoint("http://127.0.0.1:9/unreachable")
        client.pay()
        client.pay()
        assert wait_for(lambda: client.ok("GET", "/v1/queue")["outbox_lag_s"] > 0.2, 10)
        q = client.ok("GET", "/v1/queue")
        assert q["webhook_deliveries"]["pending"] == 2 and q["webhook_deliveries"]["failed"] == 0
        assert q["webhook_deliveries"]["oldest_pending_age_s"] >= q["outbox_lag_s"] > 0.2
    finally:
        client.close()
