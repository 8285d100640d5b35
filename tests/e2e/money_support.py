"""Shared helpers of the dispute and settlement e2e tests (API.md §17, §18): a merchant with a card
payment, the bank's test endpoints, and ledger checks over the public API."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.procs import MakeStack, Stack
from tests.e2e.test_upi_support import SECRET, Db, Shop, signed
from tests.polling import poll

AUTO_DISPUTE = "4000000000000259"
DISPUTE_FEE = 150
FAST = {"PAYGATE_BANK_WEBHOOK_SECRET": SECRET, "PAYGATE_BANK_DISPUTE_DELAY_MS": "100-300",
        "PAYGATE_BANK_DISPUTE_DECISION_MS": "100-300", "PAYGATE_DISPUTE_FEE": str(DISPUTE_FEE)}


def card(number: str = "4111111111111111") -> dict[str, Any]:
    return {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}


def ledger_entries(sk: httpx.Client, payment_id: str) -> list[dict[str, Any]]:
    """The payment's ledger entries over the public API, read with the merchant's secret-key client."""
    r = sk.get("/v1/ledger_entries", params={"payment_id": payment_id, "limit": 100})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def balanced_ledger(sk: httpx.Client, payment_id: str) -> dict[str, int]:
    """Every journal of the payment balances; returns each account's debits minus credits."""
    journals: dict[str, int] = defaultdict(int)
    accounts: dict[str, int] = defaultdict(int)
    for e in ledger_entries(sk, payment_id):
        assert e["payment_id"] == payment_id
        signed_amount = e["amount"] if e["direction"] == "debit" else -e["amount"]
        journals[e["journal_id"]] += signed_amount
        accounts[e["account"]] += signed_amount
    assert all(v == 0 for v in journals.values()), journals
    return dict(accounts)


@dataclass
class Money:
    shop: Shop
    bank: httpx.Client
    db: Db

    @classmethod
    def start(cls, make_stack: MakeStack, **env: str) -> Money:
        stack = make_stack(worker=True, api_workers=1, **{**FAST, **env})
        return cls(Shop.create(stack), httpx.Client(base_url=stack.bank_url, timeout=30), Db(stack.database_url))

    @property
    def stack(self) -> Stack:
        return self.shop.stack

    def close(self) -> None:
        self.shop.close()
        self.bank.close()

    def pay(self, amount: int = 5_000, number: str = "4111111111111111", currency: str = "USD") -> dict[str, Any]:
        r = self.shop.sk.post("/v1/payments", json={"amount": amount, "currency": currency,
                                                    "payment_method": card(number)})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        assert body["status"] == "captured", body
        return body

    def bank_dispute(self, reference: str, **extra: Any) -> dict[str, Any]:
        r = self.bank.post("/v1/disputes", json={"reference": reference, **extra})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def disputes(self, **params: Any) -> list[dict[str, Any]]:
        r = self.shop.sk.get("/v1/disputes", params=params)
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def dispute_of(self, payment_id: str, status: str | None = None, within_s: float = 15) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            rows = self.disputes(payment_id=payment_id)
            return rows[0] if rows and (status is None or rows[0]["status"] == status) else None
        return poll(check, within_s)

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        r = self.shop.sk.get(f"/v1/disputes/{dispute_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def entries(self, payment_id: str) -> list[dict[str, Any]]:
        return ledger_entries(self.shop.sk, payment_id)

    def ledger(self, payment_id: str) -> dict[str, int]:
        return balanced_ledger(self.shop.sk, payment_id)

    def journal_kinds(self, payment_id: str) -> list[str]:
        return [r["kind"] for r in self.db.all("SELECT kind FROM ledger_journals WHERE payment_id = %s "
                                               "ORDER BY created_at, id", payment_id)]

    def balance(self) -> dict[str, Any]:
        r = self.shop.sk.get("/v1/balance")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def callback(self, event: dict[str, Any]) -> httpx.Response:
        body, headers = signed(event)
        return httpx.post(f"{self.stack.api_url}/v1/bank/events", content=body, headers=headers, timeout=30)
