"""The contract's edges (API.md §1-3): auth, errors, validation, limits, headers, docs."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.client import Api, card
from tests.e2e.procs import MakeStack, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The `ctx` fixture: a merchant's client, an anonymous client, and the merchant itself.
Ctx = tuple[Api, httpx.AsyncClient, dict[str, str]]


@pytest.fixture
async def ctx(shared_stack: Stack) -> AsyncIterator[Ctx]:
    stack = shared_stack
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api, \
            httpx.AsyncClient(base_url=stack.api_url, timeout=30) as anon:
        yield api, anon, m


async def test_authentication(ctx: Ctx) -> None:
    _, anon, m = ctx
    r = await anon.get("/v1/payments")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = await anon.get("/v1/payments", headers={"Authorization": "Bearer sk_test_wrong"})
    assert r.status_code == 401
    basic = await anon.get("/v1/payments", auth=(m["secret_key"], ""))
    assert basic.status_code == 200 and basic.json()["object"] == "list"


async def test_publishable_key_rights(ctx: Ctx) -> None:
    api, anon, m = ctx
    pk = {"Authorization": f"Bearer {m['publishable_key']}"}
    for r in (await anon.get("/v1/payments", headers=pk),
              await anon.post("/v1/payments", headers=pk, json={"amount": 100, "currency": "USD",
                                                                  "payment_method": card()}),
              await anon.post("/v1/refunds", headers=pk, json={"payment_id": "pay_x"})):
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert (await api.get("/v1/payments")).json()["data"] == []


async def test_every_response_has_a_request_id(ctx: Ctx) -> None:
    api, anon, _ = ctx
    for r in (await anon.get("/healthz"), await anon.get("/v1/payments"), await api.get("/v1/payments/pay_x"),
              await anon.get("/nope")):
        assert r.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"amount": 100, "currency": "USD", "payment_method": card(), "colour": "red"}, 400, "parameter_unknown",
         "colour"),
        ({"currency": "USD", "payment_method": card()}, 400, "parameter_missing", "amount"),
        ({"amount": 100, "payment_method": card()}, 400, "parameter_missing", "currency"),
        ({"amount": 100, "currency": "USD"}, 400, "parameter_missing", "payment_method"),
        ({"amount": 0, "currency": "USD", "payment_method": card()}, 400, "parameter_invalid", "amount"),
        ({"amount": "100", "currency": "USD", "payment_method": card()}, 400, "parameter_invalid", "amount"),
        ({"amount": 10.5, "currency": "USD", "payment_method": card()}, 400, "parameter_invalid", "amount"),
        ({"amount": 100_000_000, "currency": "USD", "payment_method": card()}, 400, "amount_too_large", "amount"),
        ({"amount": 100, "currency": "ABC", "payment_method": card()}, 400, "parameter_invalid", "currency"),
        ({"amount": 100, "currency": "USD", "payment_method": card("4111111111111112")}, 400, "invalid_number",
         "payment_method[card][number]"),
        ({"amount": 100, "currency": "USD", "payment_method": {"type": "card", "card": {"number": "4111111111111111",
          "exp_month": 13, "exp_year": 2030, "cvc": "123"}}}, 400, "parameter_invalid",
         "payment_method[card][exp_month]"),
        ({"amount": 100, "currency": "USD", "payment_method": {"type": "card", "card": {"number": "4111111111111111",
          "exp_month": 12, "exp_year": 2030}}}, 400, "parameter_missing", "payment_method[card][cvc]"),
        ({"amount": 100, "currency": "USD", "payment_method": {"type": "upi", "upi": {"vpa": "nobody"}}}, 400,
         "invalid_vpa", "payment_method[upi][vpa]"),
        ({"amount": 100, "currency": "USD", "payment_method": card(), "capture_method": "later"}, 400,
         "parameter_invalid", "capture_method"),
        ({"amount": 100, "currency": "USD", "payment_method": card(), "customer_id": "x" * 256}, 400,
         "parameter_invalid", "customer_id"),
        ({"amount": 100, "currency": "USD", "payment_method": card(),
          "metadata": {f"k{i}": "v" for i in range(51)}}, 400, "parameter_invalid", "metadata"),
        ({"amount": 100, "currency": "USD", "payment_method": card(), "order_id": "ord_missing"}, 404,
         "resource_missing", "order_id"),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(ctx: Any, body: dict[str, Any], status: int, code: str,
                                                           param: str) -> None:
    api, _, _ = ctx
    r = await api.post("/v1/payments", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err.get("param") == param and err["message"]
    assert "Traceback" not in r.text and "4111111111111112" not in r.text
    assert (await api.get("/v1/payments")).json()["data"] == []


async def test_lower_case_currency_is_accepted(ctx: Ctx) -> None:
    api, _, _ = ctx
    r = await api.pay(100, currency="jpy")
    assert r.status_code == 201 and r.json()["currency"] == "JPY"


async def test_the_cardholder_name_is_accepted_and_kept_from_the_bank(ctx: Ctx) -> None:
    api, _, _ = ctx
    method = card()
    method["card"]["name"] = "Ada Lovelace"
    r = await api.pay(100, method=method)
    assert r.status_code == 201 and r.json()["status"] == "captured", r.text
    assert "Ada Lovelace" not in r.text


async def test_body_limits_and_media_type(ctx: Ctx) -> None:
    api, _, _ = ctx
    big = await api.http.post("/v1/payments", content=b'{"a": "' + b"x" * 1_100_000 + b'"}',
                              headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    form = await api.http.post("/v1/payments", content=b"amount=100", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 60_000  # 1.2 MB in chunks, with no Content-Length

    chunked = await api.http.post("/v1/payments", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "request_too_large"
    broken = await api.http.post("/v1/payments", content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    assert (await api.get("/v1/payments")).json()["data"] == []


async def test_ops_and_docs(ctx: Ctx) -> None:
    _, anon, _ = ctx
    assert (await anon.get("/healthz")).status_code == 200
    assert (await anon.get("/readyz")).json()["status"] == "ready"
    spec = (await anon.get("/openapi.json")).json()
    assert "/v1/payments" in spec["paths"] and "/v1/refunds" in spec["paths"]
    assert "text/html" in (await anon.get("/docs")).headers["content-type"]
    metrics = await anon.get("/metrics")
    assert metrics.status_code == 200 and "text/plain" in metrics.headers["content-type"]


async def test_nothing_sensitive_is_stored_or_logged(shared_stack: Stack, ctx: Ctx) -> None:
    stack = shared_stack
    api, _, _ = ctx
    await api.pay(100, method=card("4012888888881881", 1, 2031, "987"))
    hook_key = "hook-" + secrets.token_hex(6)
    first = await api.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]},
                           key=hook_key)
    replay = await api.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]},
                            key=hook_key)
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == first.content
    hook = first.json()
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in (await api.get(f"/v1/webhook_endpoints/{hook['id']}")).json()
    dump = (await asyncio.to_thread(subprocess.run, ["pg_dump", "--data-only", stack.database_url],
                                    capture_output=True, text=True, check=True)).stdout
    assert "4012888888881881" not in dump and '"987"' not in dump
    assert secret not in dump and secret.removeprefix("whsec_") not in dump  # only a seed is stored
    assert "4012888888881881" not in stack.logs(lines=10_000)


async def test_rate_limit_is_429_with_retry_after(make_stack: MakeStack) -> None:
    stack = make_stack(worker=False, PAYGATE_RATE_LIMIT_PER_S="2")
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"]) as api:
        results = [await api.get("/v1/payments") for _ in range(10)]
        limited = [r for r in results if r.status_code == 429]
        assert limited and results[0].status_code == 200
        err = limited[0].json()["error"]
        assert err["type"] == "rate_limit_error" and int(limited[0].headers["retry-after"]) >= 1
        metrics = (await api.http.get("/metrics")).text
        assert 'paygate_http_requests_total{method="GET",status="429"}' in metrics


async def test_bodies_on_parameterless_writes(ctx: Ctx) -> None:
    api, _, _ = ctx
    pid = (await api.pay(100, capture_method="manual")).json()["id"]
    extra = await api.post(f"/v1/payments/{pid}/void", {"reason": "x"})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "reason"
    broken = await api.http.post(f"/v1/payments/{pid}/void", content=b"{nope",
                                 headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    assert (await api.get(f"/v1/payments/{pid}")).json()["status"] == "authorized"
    assert (await api.post(f"/v1/payments/{pid}/void", {})).json()["status"] == "voided"
