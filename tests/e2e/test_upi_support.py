"""Helpers shared by the orders / UPI / bank-callback end-to-end tests (this module holds no tests): a
merchant's HTTP client, direct reads of the stack's database, signed callbacks, polling."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import psycopg
from psycopg.rows import dict_row

from paygate.domain.ids import new_id
from paygate.simbank import signing
from tests.e2e.procs import Stack
from tests.polling import poll

SECRET = "whsec_" + base64.b64encode(b"e2e-bank-callback-secret-0123456789").decode()
CARD = {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


@dataclass
class Shop:
    """A merchant of a running stack, with clients for its secret and publishable keys."""

    stack: Stack
    merchant_id: str
    sk: httpx.Client
    pk: httpx.Client

    @classmethod
    def create(cls, stack: Stack) -> Shop:
        m = stack.merchant()
        return cls(stack, m["merchant_id"],
                   httpx.Client(base_url=stack.api_url, auth=(m["secret_key"], ""), timeout=30),
                   httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {m['publishable_key']}"},
                                timeout=30))

    def close(self) -> None:
        self.sk.close()
        self.pk.close()

    def order(self, amount: int = 5_000, currency: str = "INR", **extra: Any) -> dict[str, Any]:
        resp = self.sk.post("/v1/orders", json={"amount": amount, "currency": currency, **extra})
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def upi(self, vpa: str = "success@upi", amount: int = 2_500, **extra: Any) -> dict[str, Any]:
        resp = self.sk.post("/v1/payments", json={"amount": amount, "currency": "INR",
                                                  "payment_method": {"type": "upi", "upi": {"vpa": vpa}}, **extra})
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        assert body["status"] == "pending"
        return body

    def payment(self, payment_id: str) -> dict[str, Any]:
        resp = self.sk.get(f"/v1/payments/{payment_id}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def final(self, payment_id: str, within_s: float = 15.0) -> dict[str, Any]:
        """The payment once it has left `pending` (polled over the API)."""
        return poll(lambda: (p := self.payment(payment_id))["status"] != "pending" and p, within_s)


class Db:
    """Direct reads of a stack's database (events, journals, bank_events: what the API does not show)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def all(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, row_factory=dict_row, autocommit=True) as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        rows = self.all(sql, *params)
        return rows[0] if rows else None

    def value(self, sql: str, *params: Any) -> Any:
        """The first column of the first row; None without rows."""
        row = self.one(sql, *params)
        return None if row is None else next(iter(row.values()))

    def event_types(self, object_id: str) -> list[str]:
        return [r["type"] for r in self.all("SELECT type FROM events WHERE object_id = %s ORDER BY id", object_id)]

    def journals(self, payment_id: str) -> int:
        return int(self.value("SELECT count(*) FROM ledger_journals WHERE payment_id = %s", payment_id))


def bank_event(reference: str, *, ok: bool = True, amount: int = 2_500, event_id: str | None = None) -> dict[str, Any]:
    """A callback body as the simulated bank writes it (simbank/store.py `_event_body`)."""
    data: dict[str, Any] = {"reference": reference, "operation": "capture", "amount": amount}
    if not ok:
        data["failure_code"] = "payment_declined"
    return {"id": event_id or new_id("bevt"), "type": "operation.succeeded" if ok else "operation.failed",
            "created_at": "2026-11-21T10:30:01.123456Z", "data": data}


def signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(event)
    return body, {**signing.headers(secret, str(event["id"]), body), "content-type": "application/json"}
