"""Orders end to end (API.md §2, §7, §8): a merchant creates an order with its secret key, the checkout pays
it with the publishable key (card at once, UPI by the bank's callback), and the order ends `paid` with one
`order.paid` event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.procs import MakeStack
from tests.e2e.test_upi_support import CARD, Db, Shop
from tests.polling import poll


@pytest.fixture
def shop(make_stack: MakeStack) -> Iterator[Shop]:
    s = Shop.create(make_stack(worker=False))
    yield s
    s.close()


def test_an_order_paid_by_card_with_the_publishable_key(shop: Shop) -> None:
    db = Db(shop.stack.database_url)
    order = shop.order(amount=4_200, currency="USD", receipt="r-1", notes={"cart": "42"})
    assert order["checkout_url"] == f"{shop.stack.api_url}/checkout/{order['id']}"
    public = shop.pk.get(f"/v1/orders/{order['id']}")
    assert public.status_code == 200
    assert public.json() == {"id": order["id"], "object": "order", "amount": 4_200, "currency": "USD",
                             "status": "created"}
    refused = [shop.pk.get("/v1/orders"), shop.pk.get(f"/v1/orders/{order['id']}/payments"),
               shop.pk.post("/v1/orders", json={"amount": 1, "currency": "USD"})]
    for resp in refused:
        assert resp.status_code == 403 and resp.json()["error"]["type"] == "permission_error"

    card = {"type": "card", "card": CARD}
    resp = shop.pk.post("/v1/payments", json={"order_id": order["id"], "payment_method": card})
    assert resp.status_code == 201, resp.text
    payment = resp.json()
    assert (payment["status"], payment["amount"], payment["currency"], payment["order_id"]) == (
        "captured", 4_200, "USD", order["id"])
    paid = shop.sk.get(f"/v1/orders/{order['id']}").json()
    assert paid == {**order, "status": "paid", "amount_paid": 4_200}
    assert shop.pk.get(f"/v1/orders/{order['id']}").json()["status"] == "paid"
    assert db.event_types(order["id"]) == ["order.paid"]
    event = db.one("SELECT merchant_id, data FROM events WHERE object_id = %s", order["id"])
    assert event == {"merchant_id": shop.merchant_id, "data": paid}
    announced = shop.sk.get("/v1/events", params={"type": "order.paid"}).json()["data"]
    assert [(e["type"], e["data"]["object"]) for e in announced] == [("order.paid", paid)]
    captured = shop.sk.get("/v1/events", params={"type": "payment.captured"}).json()["data"]
    assert [e["data"]["object"]["order_id"] for e in captured] == [order["id"]]
    listed = shop.sk.get(f"/v1/orders/{order['id']}/payments").json()
    assert listed["data"] == [shop.payment(payment["id"])] and listed["has_more"] is False
    assert [o["id"] for o in shop.sk.get("/v1/orders").json()["data"]] == [order["id"]]


def test_an_order_paid_by_upi_becomes_attempted_then_paid(shop: Shop) -> None:
    db = Db(shop.stack.database_url)
    order = shop.order(amount=99_900, currency="INR")
    declined = shop.pk.post("/v1/payments", json={"order_id": order["id"],
                                                  "payment_method": {"type": "upi", "upi": {"vpa": "failure@upi"}}})
    assert declined.status_code == 201 and declined.json()["status"] == "pending"
    assert shop.pk.get(f"/v1/orders/{order['id']}").json()["status"] == "attempted"
    assert shop.final(declined.json()["id"])["status"] == "failed"
    assert shop.sk.get(f"/v1/orders/{order['id']}").json()["status"] == "attempted"

    resp = shop.pk.post("/v1/payments", json={"order_id": order["id"],
                                              "payment_method": {"type": "upi", "upi": {"vpa": "buyer@okbank"}}})
    assert resp.status_code == 201
    p = resp.json()
    assert (p["status"], p["amount"], p["currency"]) == ("pending", 99_900, "INR")
    assert shop.final(p["id"])["status"] == "captured"
    paid = poll(lambda: (o := shop.sk.get(f"/v1/orders/{order['id']}").json())["status"] == "paid" and o)
    assert paid["amount_paid"] == 99_900
    assert db.event_types(order["id"]) == ["order.paid"]
    types = [e["type"] for e in shop.sk.get("/v1/events", params={"limit": 100}).json()["data"]]
    assert sorted(types) == sorted(["payment.pending", "payment.failed", "payment.pending", "payment.captured",
                                    "order.paid"])
    listed = shop.sk.get(f"/v1/orders/{order['id']}/payments").json()["data"]
    assert [(x["id"], x["status"]) for x in listed] == [(p["id"], "captured"), (declined.json()["id"], "failed")]
