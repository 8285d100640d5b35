"""Orders (API.md §7) through the in-process API over a real PostgreSQL and the real simulated bank."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.integration.test_orders_support import CARD, EXPIRED_CARD, PUBLIC_URL, Api, api

__all__ = ["api"]  # the fixture, imported so that pytest finds it here


async def test_create_order_returns_the_full_object(api: Api) -> None:
    m = await api.merchant()
    resp = await api.http.post("/v1/orders", headers=m.sk, json={
        "amount": 49_900, "currency": "inr", "receipt": "rcpt-1", "notes": {"sku": "tea"}})
    assert resp.status_code == 201
    assert resp.headers["request-id"].startswith("req_")
    order = resp.json()
    assert list(order) == ["id", "object", "amount", "currency", "receipt", "notes", "status", "amount_paid",
                           "checkout_url", "created_at", "return_url"]
    assert order["id"].startswith("ord_")
    assert order | {"id": None, "created_at": None} == {
        "id": None, "object": "order", "amount": 49_900, "currency": "INR", "receipt": "rcpt-1",
        "notes": {"sku": "tea"}, "status": "created", "amount_paid": 0,
        "checkout_url": f"{PUBLIC_URL}/checkout/{order['id']}", "created_at": None, "return_url": None}
    assert order["created_at"].endswith("Z")
    minimal = await api.order(m, amount=1, currency="JPY")
    assert minimal["receipt"] is None and minimal["notes"] == {}


async def test_create_order_validates_its_body(api: Api) -> None:
    m = await api.merchant()
    cases = [
        ({"currency": "USD"}, "parameter_missing", "amount"),
        ({"amount": 100}, "parameter_missing", "currency"),
        ({"amount": 0, "currency": "USD"}, "parameter_invalid", "amount"),
        ({"amount": 100_000_000, "currency": "USD"}, "amount_too_large", "amount"),
        ({"amount": "100", "currency": "USD"}, "parameter_invalid", "amount"),
        ({"amount": 100, "currency": "XXX"}, "parameter_invalid", "currency"),
        ({"amount": 100, "currency": "USD", "notes": {"a": 1}}, "parameter_invalid", None),
        ({"amount": 100, "currency": "USD", "receipt": "r" * 256}, "parameter_invalid", "receipt"),
        ({"amount": 100, "currency": "USD", "status": "paid"}, "parameter_unknown", "status"),
    ]
    for body, code, param in cases:
        resp = await api.http.post("/v1/orders", json=body, headers=m.sk)
        assert resp.status_code == 400, (body, resp.text)
        err = resp.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == code, (body, err)
        if param is not None:
            assert err["param"] == param, (body, err)
    assert await api.count("SELECT count(*) FROM orders") == 0


async def test_create_order_is_idempotent(api: Api) -> None:
    m = await api.merchant()
    headers = {**m.sk, "Idempotency-Key": "order-1"}
    body = {"amount": 700, "currency": "EUR"}
    first = await api.http.post("/v1/orders", json=body, headers=headers)
    again = await api.http.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    other = await api.http.post("/v1/orders", json={"amount": 701, "currency": "EUR"}, headers=headers)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    # concurrent retries of one key still make one order
    racing = await asyncio.gather(*(api.http.post("/v1/orders", json=body, headers={**m.sk, "Idempotency-Key": "k2"})
                                    for _ in range(10)))
    assert {r.status_code for r in racing} <= {201, 409}
    assert len({r.json()["id"] for r in racing if r.status_code == 201}) == 1
    assert await api.count("SELECT count(*) FROM orders") == 2


async def test_retrieve_full_with_secret_public_with_publishable_404_for_others(api: Api) -> None:
    m, other = await api.merchant(), await api.merchant()
    order = await api.order(m, receipt="r-9", notes={"k": "v"})
    full = await api.http.get(f"/v1/orders/{order['id']}", headers=m.sk)
    assert full.status_code == 200 and full.json() == order
    public = await api.http.get(f"/v1/orders/{order['id']}", headers=m.pk)
    assert public.status_code == 200
    assert public.json() == {"id": order["id"], "object": "order", "amount": order["amount"],
                             "currency": order["currency"], "status": "created"}
    for headers in (other.sk, other.pk):
        resp = await api.http.get(f"/v1/orders/{order['id']}", headers=headers)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "resource_missing"
    assert (await api.http.get("/v1/orders/ord_nope", headers=m.sk)).status_code == 404
    assert (await api.http.get(f"/v1/orders/{order['id']}")).status_code == 401


async def test_publishable_key_may_do_nothing_else_with_orders(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m)
    calls = [
        api.http.post("/v1/orders", json={"amount": 100, "currency": "USD"}, headers=m.pk),
        api.http.post("/v1/orders", json={"bogus": True}, headers=m.pk),  # 403 before validation
        api.http.get("/v1/orders", headers=m.pk),
        api.http.get(f"/v1/orders/{order['id']}/payments", headers=m.pk),
    ]
    for resp in await asyncio.gather(*calls):
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["type"] == "permission_error"
    assert await api.count("SELECT count(*) FROM orders") == 1


async def test_list_orders_paginates_newest_first_and_filters_by_time(api: Api) -> None:
    m, other = await api.merchant(), await api.merchant()
    made = [await api.order(m, amount=100 + i) for i in range(5)]
    await api.order(other)
    resp = await api.http.get("/v1/orders", params={"limit": 2}, headers=m.sk)
    page1 = resp.json()
    assert page1["object"] == "list" and page1["has_more"] is True
    assert [o["id"] for o in page1["data"]] == [made[4]["id"], made[3]["id"]]
    assert page1["data"][0] == made[4]
    seen = [o["id"] for o in page1["data"]]
    cursor = seen[-1]
    while True:
        page = (await api.http.get("/v1/orders", params={"limit": 2, "starting_after": cursor}, headers=m.sk)).json()
        seen += [o["id"] for o in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == [o["id"] for o in reversed(made)]

    cut = made[2]["created_at"]
    gte = (await api.http.get("/v1/orders", params={"created_gte": cut}, headers=m.sk)).json()
    assert [o["id"] for o in gte["data"]] == [o["id"] for o in reversed(made[2:])]
    lt = (await api.http.get("/v1/orders", params={"created_lt": cut}, headers=m.sk)).json()
    assert [o["id"] for o in lt["data"]] == [o["id"] for o in reversed(made[:2])]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert (await api.http.get("/v1/orders", params={"created_gte": future}, headers=m.sk)).json()["data"] == []
    for params in ({"created_gte": "yesterday"}, {"limit": 0}, {"limit": 101}):
        assert (await api.http.get("/v1/orders", params=params, headers=m.sk)).status_code == 400


async def test_a_payment_takes_amount_and_currency_from_its_order(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m, amount=1_234, currency="USD")
    card = {"type": "card", "card": EXPIRED_CARD}  # fails without asking the bank: attempted, not paid
    resp = await api.http.post("/v1/payments", json={"order_id": order["id"], "payment_method": card}, headers=m.pk)
    assert resp.status_code == 402
    failed = resp.json()["error"]["payment"]
    assert (failed["amount"], failed["currency"], failed["order_id"]) == (1_234, "USD", order["id"])
    got = (await api.http.get(f"/v1/orders/{order['id']}", headers=m.pk)).json()
    assert got["status"] == "attempted"

    # a secret key may repeat them, but only equal to the order's
    for extra, param in (({"amount": 1_235}, "amount"), ({"currency": "EUR"}, "currency")):
        body = {"order_id": order["id"], "payment_method": {"type": "card", "card": CARD}, **extra}
        bad = await api.http.post("/v1/payments", json=body, headers=m.sk)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param
    # a publishable key may not send them at all
    body = {"order_id": order["id"], "amount": 1_234, "payment_method": {"type": "card", "card": CARD}}
    assert (await api.http.post("/v1/payments", json=body, headers=m.pk)).status_code == 403
    # nor pay without an order; an unknown order is 404
    card_ok = {"type": "card", "card": CARD}
    assert (await api.http.post("/v1/payments", json={"payment_method": card_ok}, headers=m.pk)).status_code == 403
    missing = await api.http.post("/v1/payments", json={"order_id": "ord_nope", "payment_method": card_ok},
                                  headers=m.pk)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "order_id"

    ok = await api.http.post("/v1/payments", json={"order_id": order["id"], "amount": 1_234, "currency": "usd",
                                                   "payment_method": card_ok}, headers=m.sk)
    assert ok.status_code == 201 and ok.json()["status"] == "captured"
    paid = (await api.http.get(f"/v1/orders/{order['id']}", headers=m.sk)).json()
    assert (paid["status"], paid["amount_paid"]) == ("paid", 1_234)
    events = await api.all("SELECT type, data FROM events WHERE object_id = %s", order["id"])
    assert [e["type"] for e in events] == ["order.paid"]
    assert events[0]["data"] == paid
    # a paid order takes no more payments
    again = await api.http.post("/v1/payments", json={"order_id": order["id"], "payment_method": card_ok},
                                headers=m.pk)
    assert again.status_code == 409 and again.json()["error"]["code"] == "order_already_paid"


async def test_an_orders_payments_newest_first(api: Api) -> None:
    m, other = await api.merchant(), await api.merchant()
    order = await api.order(m, amount=900, currency="INR")
    failed = (await api.http.post("/v1/payments", headers=m.pk, json={
        "order_id": order["id"], "payment_method": {"type": "card", "card": EXPIRED_CARD}})).json()["error"]["payment"]
    pending = await api.upi_payment(m, order_id=order["id"])
    await api.upi_payment(m)  # not the order's
    resp = await api.http.get(f"/v1/orders/{order['id']}/payments", headers=m.sk)
    assert resp.status_code == 200
    listed = resp.json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [p["id"] for p in listed["data"]] == [pending["id"], failed["id"]]
    assert listed["data"][0] == await api.payment(m, pending["id"])
    one = (await api.http.get(f"/v1/orders/{order['id']}/payments", params={"limit": 1}, headers=m.sk)).json()
    assert [p["id"] for p in one["data"]] == [pending["id"]] and one["has_more"] is True
    rest = (await api.http.get(f"/v1/orders/{order['id']}/payments", params={"starting_after": pending["id"]},
                               headers=m.sk)).json()
    assert [p["id"] for p in rest["data"]] == [failed["id"]]
    assert (await api.http.get(f"/v1/orders/{order['id']}/payments", headers=other.sk)).status_code == 404
    empty = await api.order(m)
    assert (await api.http.get(f"/v1/orders/{empty['id']}/payments", headers=m.sk)).json()["data"] == []
