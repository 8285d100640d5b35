"""Abuse of the public surfaces (API.md §19), through real requests against real processes: per-address
limits for publishable keys and the hosted checkout, the limit on failed authentications before any
lookup, separate pk/sk budgets, at most N failed payments per order, and the checkout's own
Idempotency-Key namespace.

The tests run from 127.0.0.1; stacks that need several client addresses trust 127.0.0.1 as a proxy
(`PAYGATE_TRUSTED_PROXIES`) and name the address in X-Forwarded-For, as a reverse proxy would.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.procs import MakeStack, Stack

GOOD = {"type": "card", "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}
DECLINED = {"type": "card", "card": {"number": "4000000000000002", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}


class Shop:
    """A merchant of a stack: `sk` and `pk` clients, and a keyless `public` client (the checkout's)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        m = stack.merchant()
        self.merchant_id = m["merchant_id"]
        self.sk = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {m['secret_key']}"},
                               timeout=30)
        self.pk = httpx.Client(base_url=stack.api_url,
                               headers={"Authorization": f"Bearer {m['publishable_key']}"}, timeout=30)
        self.public = httpx.Client(base_url=stack.api_url, timeout=30)
        self.bank = httpx.Client(base_url=stack.bank_url, timeout=30)

    def order(self, amount: int = 1_000) -> str:
        resp = self.sk.post("/v1/orders", json={"amount": amount, "currency": "USD"})
        assert resp.status_code == 201, resp.text
        oid: str = resp.json()["id"]
        return oid

    def close(self) -> None:
        for client in (self.sk, self.pk, self.public, self.bank):
            client.close()


MakeShop = Callable[..., Shop]  # shop_for(**PAYGATE_env): a merchant on a new stack with those settings


@pytest.fixture
def shop_for(make_stack: MakeStack) -> Iterator[MakeShop]:
    shops: list[Shop] = []

    def make(**env: str) -> Shop:
        shop = Shop(make_stack(worker=False, api_workers=1, database_url=None, **env))
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.close()


def via(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def assert_limited(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["retry-after"]) >= 1


def test_a_publishable_key_flood_from_one_address_leaves_the_secret_key_alone(shop_for: MakeShop) -> None:
    shop = shop_for(PAYGATE_PUBLIC_RATE_LIMIT_PER_MIN="5", PAYGATE_TRUSTED_PROXIES="127.0.0.1")
    oid = shop.order()
    flood = [shop.pk.get(f"/v1/orders/{oid}", headers=via("203.0.113.7")) for _ in range(15)]
    assert [r.status_code for r in flood[:5]] == [200] * 5  # a minute's worth at once
    limited = [r for r in flood[5:] if r.status_code == 429]
    assert len(limited) >= 8  # a token every 12 s may come back meanwhile, no more
    assert_limited(limited[0])
    assert limited[0].json()["error"]["type"] == "rate_limit_error"
    # The same merchant's server, and the same key from another address, still pass.
    assert all(shop.sk.get(f"/v1/orders/{oid}").status_code == 200 for _ in range(20))
    assert shop.pk.get(f"/v1/orders/{oid}", headers=via("198.51.100.9")).status_code == 200
    # The address is the limit's, not the key's: the checkout from that address is refused too.
    assert_limited(shop.public.get(f"/checkout/{oid}/status", headers=via("203.0.113.7")))


def test_without_trusted_proxies_forwarded_for_is_ignored(shop_for: MakeShop) -> None:
    shop = shop_for(PAYGATE_PUBLIC_RATE_LIMIT_PER_MIN="5")
    oid = shop.order()
    answers = [shop.pk.get(f"/v1/orders/{oid}", headers=via(f"203.0.113.{i}")).status_code for i in range(8)]
    assert answers[:5] == [200] * 5 and 429 in answers[5:]  # spoofed addresses are one address: the peer


def test_publishable_traffic_cannot_spend_the_merchants_secret_key_budget(shop_for: MakeShop) -> None:
    # Many addresses (each within its own limit) against one merchant: its pk bucket runs dry, its sk one not.
    shop = shop_for(PAYGATE_RATE_LIMIT_PER_S="1", PAYGATE_TRUSTED_PROXIES="127.0.0.1")
    oid = shop.order()
    answers = [shop.pk.get(f"/v1/orders/{oid}", headers=via(f"198.51.100.{i}")) for i in range(1, 21)]
    assert 429 in [r.status_code for r in answers]
    assert shop.sk.get(f"/v1/orders/{oid}").status_code == 200


def test_unknown_keys_are_limited_per_address_before_authentication(shop_for: MakeShop) -> None:
    shop = shop_for(PAYGATE_PUBLIC_RATE_LIMIT_PER_MIN="3", PAYGATE_TRUSTED_PROXIES="127.0.0.1")

    def guess(address: str, key: str | None = None) -> httpx.Response:
        key = key or f"sk_test_{secrets.token_hex(16)}"
        return shop.public.get("/v1/payments", headers={"Authorization": f"Bearer {key}", **via(address)})

    assert [guess("203.0.113.7").status_code for _ in range(3)] == [401] * 3
    blocked = guess("203.0.113.7")
    assert_limited(blocked)
    assert blocked.json()["error"]["type"] == "rate_limit_error"
    # Refused before the lookup: from that address even a real key waits (it cannot be told apart unread).
    real = shop.sk.headers["Authorization"].removeprefix("Bearer ")
    assert_limited(guess("203.0.113.7", real))
    assert guess("198.51.100.9").status_code == 401  # other addresses are not affected
    assert guess("198.51.100.9", real).status_code == 200
    # Valid keys never spend the failed-attempt budget.
    assert all(guess("192.0.2.1", real).status_code == 200 for _ in range(10))


def test_the_hosted_checkout_is_limited_per_address(shop_for: MakeShop) -> None:
    shop = shop_for(PAYGATE_PUBLIC_RATE_LIMIT_PER_MIN="3", PAYGATE_TRUSTED_PROXIES="127.0.0.1")
    oid = shop.order()
    here = via("203.0.113.7")
    assert shop.public.get(f"/checkout/{oid}", headers=here).status_code == 200
    tries = [shop.public.post(f"/checkout/{oid}/pay", json={"payment_method": DECLINED}, headers=here)
             for _ in range(2)]
    assert [r.status_code for r in tries] == [402] * 2
    refused = shop.public.post(f"/checkout/{oid}/pay", json={"payment_method": DECLINED}, headers=here)
    assert_limited(refused)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    # Malformed bodies count as well (the limit comes before parsing), and the page answers 429 as a page.
    assert_limited(shop.public.post(f"/checkout/{oid}/pay", json={}, headers=here))
    page = shop.public.get(f"/checkout/{oid}", headers=here)
    assert_limited(page)
    assert page.headers["content-type"].startswith("text/html") and "Too many requests" in page.text
    assert len(shop.sk.get(f"/v1/orders/{oid}/payments").json()["data"]) == 2  # the refused ones made nothing
    assert shop.public.get(f"/checkout/{oid}", headers=via("198.51.100.9")).status_code == 200


def test_an_order_refuses_payments_after_ten_failures(shop_for: MakeShop) -> None:
    shop = shop_for()  # the defaults: 10 failed payments per order
    oid = shop.order(amount=2_500)
    for i in range(10):
        client = shop.public if i % 2 else shop.pk
        path = f"/checkout/{oid}/pay" if i % 2 else "/v1/payments"
        body: dict[str, Any] = {"payment_method": DECLINED} if i % 2 else {"order_id": oid, "payment_method": DECLINED}
        assert client.post(path, json=body).status_code == 402
    before = shop.bank.get("/v1/cards/4111111111111111").json()

    key = f"attempt-{secrets.token_hex(4)}"
    answers = [
        shop.sk.post("/v1/payments", json={"order_id": oid, "payment_method": GOOD}, headers={"Idempotency-Key": key}),
        shop.pk.post("/v1/payments", json={"order_id": oid, "payment_method": GOOD}),
        shop.public.post(f"/checkout/{oid}/pay", json={"payment_method": GOOD}),
    ]
    for resp in answers:
        assert resp.status_code == 429, resp.text
        assert resp.json()["error"]["type"] == "rate_limit_error"
        assert resp.json()["error"]["code"] == "too_many_attempts"
    # Nothing reached the bank (a good card would have been charged) and nothing was created.
    assert shop.bank.get("/v1/cards/4111111111111111").json() == before
    assert before["captured"] == 0 and before["held"] == 0
    pays = shop.sk.get(f"/v1/orders/{oid}/payments", params={"limit": 100}).json()["data"]
    assert len(pays) == 10 and {p["status"] for p in pays} == {"failed"}
    for p in pays:  # each failure went to the bank once; the refused attempts have no operation at all
        assert len(shop.bank.get("/v1/operations", params={"reference": p["id"]}).json()["data"]) == 1
    # The 429 is not stored under the key: the same key with another request runs afresh (no 422).
    other = shop.sk.post("/v1/payments", json={"amount": 700, "currency": "USD", "payment_method": GOOD},
                         headers={"Idempotency-Key": key})
    assert other.status_code == 201 and other.json()["status"] == "captured"
    assert shop.sk.get(f"/v1/orders/{oid}").json()["status"] != "paid"


def test_the_checkouts_idempotency_keys_never_collide_with_the_merchants(shop_for: MakeShop) -> None:
    shop = shop_for()
    key = "order-123"  # a merchant's predictable key
    mine = shop.sk.post("/v1/orders", json={"amount": 1_500, "currency": "USD"}, headers={"Idempotency-Key": key})
    assert mine.status_code == 201
    oid = mine.json()["id"]
    # Whoever holds the link sends the same key: its own payment, not the merchant's 422 (nor a replay).
    paid = shop.public.post(f"/checkout/{oid}/pay", json={"payment_method": GOOD}, headers={"Idempotency-Key": key})
    assert paid.status_code == 201 and paid.json()["object"] == "payment", paid.text
    assert "idempotent-replayed" not in paid.headers
    again = shop.public.post(f"/checkout/{oid}/pay", json={"payment_method": GOOD}, headers={"Idempotency-Key": key})
    assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == paid.json()["id"]
    # The publishable key has a namespace of its own as well (it is public too).
    second = shop.order()
    by_pk = shop.pk.post("/v1/payments", json={"order_id": second, "payment_method": GOOD},
                         headers={"Idempotency-Key": key})
    assert by_pk.status_code == 201 and by_pk.json()["order_id"] == second, by_pk.text
    # And the merchant's key still replays the merchant's order.
    replay = shop.sk.post("/v1/orders", json={"amount": 1_500, "currency": "USD"}, headers={"Idempotency-Key": key})
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json()["id"] == oid
