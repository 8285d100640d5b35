"""Shared by test_orders_api.py and test_bank_events_api.py (it holds no tests): the gateway API served
in-process over httpx.ASGITransport with its lifespan running, on this test's own database, connected to
the real simulated bank, also in-process. The bank's UPI delay is 10 minutes, so a UPI payment stays
`pending` at the bank for the whole test and the only callbacks the gateway sees are the ones a test signs
and sends itself.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from paygate.acquirers.simbank import SimBank
from paygate.api.app import create_app
from paygate.cli import bank_config
from paygate.config import Settings
from paygate.domain.ids import new_id
from paygate.services import merchants
from paygate.services.gateway import Gateway
from paygate.simbank import signing
from paygate.simbank.app import create_app as create_bank_app
from paygate.store.db import Row, fetch_all, fetch_one

SECRET = "whsec_" + base64.b64encode(b"orders-and-upi-test-secret-0123").decode()
PUBLIC_URL = "http://paygate.test"
CARD = {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
EXPIRED_CARD = {"number": "4111111111111111", "exp_month": 1, "exp_year": 2020, "cvc": "123"}


@dataclass
class Merchant:
    merchant_id: str
    sk: dict[str, str]  # Authorization headers
    pk: dict[str, str]


@dataclass
class Api:
    http: httpx.AsyncClient
    gw: Gateway

    async def merchant(self) -> Merchant:
        made = await merchants.create(self.gw.pool, name="Shop", email=f"m-{secrets.token_hex(4)}@example.com",
                                      password="pw-long-enough")
        return Merchant(made.merchant_id, {"Authorization": f"Bearer {made.secret_key}"},
                        {"Authorization": f"Bearer {made.publishable_key}"})

    async def one(self, sql: str, *params: Any) -> Row | None:
        async with self.gw.pool.connection() as conn:
            return await fetch_one(conn, sql, params)

    async def all(self, sql: str, *params: Any) -> list[Row]:
        async with self.gw.pool.connection() as conn:
            return await fetch_all(conn, sql, params)

    async def count(self, sql: str, *params: Any) -> int:
        row = await self.one(sql, *params)
        assert row is not None
        return int(next(iter(row.values())))

    async def order(self, m: Merchant, amount: int = 5_000, currency: str = "INR", **extra: Any) -> dict[str, Any]:
        resp = await self.http.post("/v1/orders", json={"amount": amount, "currency": currency, **extra},
                                    headers=m.sk)
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    async def upi_payment(self, m: Merchant, vpa: str = "success@upi", **extra: Any) -> dict[str, Any]:
        body = {"payment_method": {"type": "upi", "upi": {"vpa": vpa}}, **extra}
        if "order_id" not in extra:
            body = {"amount": 2_500, "currency": "INR", **body}
        resp = await self.http.post("/v1/payments", json=body, headers=m.pk if "order_id" in extra else m.sk)
        assert resp.status_code == 201, resp.text
        payment: dict[str, Any] = resp.json()
        assert payment["status"] == "pending"
        return payment

    async def payment(self, m: Merchant, payment_id: str) -> dict[str, Any]:
        resp = await self.http.get(f"/v1/payments/{payment_id}", headers=m.sk)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body


def bank_event(reference: str, *, ok: bool = True, amount: int = 2_500, operation: str = "capture",
               event_id: str | None = None, failure_code: str = "payment_declined") -> dict[str, Any]:
    """A callback body exactly as the simulated bank writes it (simbank/store.py `_event_body`)."""
    data: dict[str, Any] = {"reference": reference, "operation": operation, "amount": amount}
    if not ok:
        data["failure_code"] = failure_code
    return {"id": event_id or new_id("bevt"), "type": "operation.succeeded" if ok else "operation.failed",
            "created_at": "2026-11-21T10:30:01.123456Z", "data": data}


def signed(event: dict[str, Any], secret: str = SECRET, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(event)
    headers = signing.headers(secret, str(event.get("id", "x")), body, timestamp)
    return body, {**headers, "content-type": "application/json"}


async def post_event(http: httpx.AsyncClient, event: dict[str, Any], **kw: Any) -> httpx.Response:
    body, headers = signed(event, **kw)
    return await http.post("/v1/bank/events", content=body, headers=headers)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    settings = Settings(database_url=database_url, public_url=PUBLIC_URL, bank_url="http://bank.test",
                        bank_webhook_secret=SECRET, bank_upi_delay_ms="600000-600000", log_level="warning")
    bank_app = create_bank_app(database_url, bank_config(settings, "bank"))
    bank = SimBank("http://bank.test", name="bank", webhook_secret=SECRET,
                   transport=httpx.ASGITransport(app=bank_app))
    app = create_app(settings, acquirers={"bank": bank})
    async with bank_app.router.lifespan_context(bank_app), app.router.lifespan_context(app):
        gw: Gateway = app.state.context.gateway
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL,
                                     timeout=30) as http:
            yield Api(http, gw)
