"""A thin test client for the gateway API and the bank's inspection endpoints."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

CARD_OK = {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def card(
    number: str = "4111111111111111", exp_month: int = 12, exp_year: int = 2030, cvc: str = "123"
) -> dict[str, Any]:
    return {"type": "card", "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}}


def new_key() -> str:
    return "idem-" + secrets.token_hex(8)


class Api:
    def __init__(self, base_url: str, key: str, bank_url: str | None = None) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        self.bank = httpx.AsyncClient(base_url=bank_url, timeout=30) if bank_url else None

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        if self.bank:
            await self.bank.aclose()

    async def post(self, path: str, body: Any = None, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.http.post(path, json=body, headers=headers)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params)

    async def pay(self, amount: int = 5000, currency: str = "USD", method: dict[str, Any] | None = None,
                  key: str | None = None, **extra: Any) -> httpx.Response:
        body = {"amount": amount, "currency": currency, "payment_method": method or card(), **extra}
        return await self.post("/v1/payments", body, key=key)

    async def bank_ops(self, reference: str) -> list[dict[str, Any]]:
        assert self.bank is not None
        r = await self.bank.get("/v1/operations", params={"reference": reference})
        r.raise_for_status()
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    async def bank_card(self, number: str) -> dict[str, Any]:
        assert self.bank is not None
        r = await self.bank.get(f"/v1/cards/{number}")
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out
