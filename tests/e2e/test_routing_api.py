"""GET/PUT /v1/routing and GET /v1/acquirers over HTTP (API.md §14), against a stack configured with two
acquirers. These endpoints never call a bank, so both names point at the stack's one simulator URL
(tests/e2e/procs.py starts one bank; the failover e2e tests start one per name)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from paygate.domain.health import Policy
from paygate.store import acquirer_health
from tests.e2e.procs import MakeStack, Stack
from tests.e2e.test_webhooks_receiver import Client

ACQUIRERS = "alpha=http://127.0.0.1:8787,beta=http://127.0.0.1:8787"
VALID = {"default": ["beta", "alpha"], "rules": [
    {"name": "rupees", "when": {"currency": ["inr"], "method": ["upi", "card"]}, "acquirers": ["alpha"]},
    {"when": {"amount_gte": 100_000}, "acquirers": ["alpha", "beta"], "order": "success_rate"},
]}


@pytest.fixture
def two_acquirers(make_stack: MakeStack) -> Stack:
    return make_stack(worker=False, PAYGATE_ACQUIRERS=ACQUIRERS)


@pytest.fixture
def merchant(two_acquirers: Stack) -> dict[str, str]:
    return two_acquirers.merchant()


@pytest.fixture
def client(two_acquirers: Stack, merchant: dict[str, str]) -> Iterator[Client]:
    c = Client(two_acquirers.api_url, merchant["secret_key"])
    yield c
    c.close()


def _error(r: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code, err
    assert err.get("param") == param, err
    return err


def test_routing_defaults_then_put_validates_replaces_and_replays(client: Client) -> None:
    first = client.ok("GET", "/v1/routing")
    assert first == {"object": "routing", "default": ["alpha", "beta"], "rules": [], "updated_at": None}

    put = client.http.put
    cases: list[tuple[Any, str, str]] = [
        ({"default": ["alpha", "gamma"]}, "default[1]", "parameter_invalid"),
        ({"default": []}, "default", "parameter_invalid"),
        ({"rules": []}, "default", "parameter_missing"),
        ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"]},
                                          {"acquirers": ["beta"], "when": {"currency": ["EURO"]}}]},
         "rules[1].when.currency[0]", "parameter_invalid"),
        ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount_gte": 500, "amount_lt": 100}}]},
         "rules[0].when.amount_lt", "parameter_invalid"),
        ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"method": ["cheque"]}}]},
         "rules[0].when.method[0]", "parameter_invalid"),
        ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"card_brand": ["diners"]}}]},
         "rules[0].when.card_brand[0]", "parameter_invalid"),
        ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount_gte": -5}}]},
         "rules[0].when.amount_gte", "parameter_invalid"),
        ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "if": {}}]}, "rules[0].if", "parameter_unknown"),
        ({"default": ["alpha"], "fallback": ["beta"]}, "fallback", "parameter_unknown"),
    ]
    for body, param, code in cases:
        err = _error(put("/v1/routing", json=body), 400, code, param)
        assert err["type"] == "invalid_request_error" and err["message"]
    _error(put("/v1/routing", content=b"{not json", headers={"Content-Type": "application/json"}), 400,
           "parameter_invalid")
    assert client.ok("GET", "/v1/routing") == first  # nothing changed

    key = {"Idempotency-Key": "routing-1"}
    r = put("/v1/routing", json=VALID, headers=key)
    assert r.status_code == 200, r.text
    saved = r.json()
    assert saved["object"] == "routing" and saved["updated_at"] is not None
    assert saved["default"] == ["beta", "alpha"]
    assert saved["rules"] == [
        {"name": "rupees", "when": {"currency": ["INR"], "method": ["upi", "card"]}, "acquirers": ["alpha"],
         "order": "priority"},
        {"when": {"amount_gte": 100_000}, "acquirers": ["alpha", "beta"], "order": "success_rate"},
    ]
    assert client.ok("GET", "/v1/routing") == saved

    replay = put("/v1/routing", json=VALID, headers=key)
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.content == r.content
    _error(put("/v1/routing", json={"default": ["alpha"]}, headers=key), 422, "idempotency_key_reused")
    assert client.ok("GET", "/v1/routing") == saved

    again = client.ok("PUT", "/v1/routing", {"default": ["alpha"]})
    assert again["rules"] == [] and again["default"] == ["alpha"] and again["updated_at"] >= saved["updated_at"]


def test_routing_is_per_merchant_and_needs_the_secret_key(two_acquirers: Stack, client: Client,
                                                           merchant: dict[str, str]) -> None:
    client.ok("PUT", "/v1/routing", {"default": ["beta"]})
    other = Client(two_acquirers.api_url, two_acquirers.merchant()["secret_key"])
    try:
        assert other.ok("GET", "/v1/routing")["default"] == ["alpha", "beta"]
    finally:
        other.close()
    with httpx.Client(base_url=two_acquirers.api_url, auth=(merchant["publishable_key"], ""), timeout=30) as pk:
        for r in (pk.get("/v1/routing"), pk.put("/v1/routing", json={"default": ["alpha"]}), pk.get("/v1/acquirers")):
            assert r.status_code == 403, r.text
            assert r.json()["error"]["type"] == "permission_error"
    with httpx.Client(base_url=two_acquirers.api_url, timeout=30) as anonymous:
        assert anonymous.get("/v1/routing").status_code == 401
        assert anonymous.get("/v1/acquirers").status_code == 401
    assert client.ok("GET", "/v1/routing")["default"] == ["beta"]
    assert client.http.get("/v1/routing/x").status_code == 404


async def _record(database_url: str, acquirer: str, results: list[str]) -> None:
    policy = Policy(trip_after=5, cooldown=timedelta(seconds=300))
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn, conn.transaction():
        for i, result in enumerate(results):
            await acquirer_health.record_attempt(
                conn, payment_id=f"pay_{acquirer}_{i}", merchant_id="mer_x", acquirer=acquirer, result=result,
                failure_code=None, at=now + timedelta(milliseconds=i), policy=policy)


def test_acquirers_lists_health_and_approval_rate(two_acquirers: Stack, client: Client) -> None:
    listed = client.ok("GET", "/v1/acquirers")
    assert listed == {"object": "list", "has_more": False, "data": [
        {"object": "acquirer", "name": name, "status": "up", "consecutive_failures": 0, "down_until": None,
         "approval_rate": None, "attempts": 0} for name in ("alpha", "beta")]}

    # what the authorize flow records (store.acquirer_health.record_attempt), read back by the API
    asyncio.run(_record(two_acquirers.database_url, "alpha", ["succeeded", "declined", "succeeded", "succeeded"]))
    asyncio.run(_record(two_acquirers.database_url, "beta", ["succeeded"] + ["unavailable"] * 5))
    alpha, beta = client.ok("GET", "/v1/acquirers")["data"]
    assert alpha == {"object": "acquirer", "name": "alpha", "status": "up", "consecutive_failures": 0,
                     "down_until": None, "approval_rate": 0.75, "attempts": 4}
    assert (beta["status"], beta["consecutive_failures"], beta["attempts"]) == ("down", 5, 6)
    assert beta["approval_rate"] == pytest.approx(1 / 6)
    assert beta["down_until"] > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_openapi_describes_the_routing_body(two_acquirers: Stack) -> None:
    spec = httpx.get(f"{two_acquirers.api_url}/openapi.json", timeout=30).json()
    put = spec["paths"]["/v1/routing"]["put"]
    schema = put["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["default"] and schema["additionalProperties"] is False
    rule = schema["properties"]["rules"]["items"]
    assert set(rule["properties"]) == {"name", "when", "acquirers", "order"}
    assert "$ref" not in str(schema)  # inlined: a fuzzer needs no components to read it
    assert schema["properties"]["default"]["items"] == {"type": "string", "enum": ["alpha", "beta"]}
    assert rule["properties"]["acquirers"]["items"]["enum"] == ["alpha", "beta"]
    assert "/v1/acquirers" in spec["paths"]
