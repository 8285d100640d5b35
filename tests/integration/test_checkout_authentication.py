"""The hosted checkout's side of customer authentication (API.md §15), in-process: the return_url the checkout
gives a payment, the state a page shows for a payment named by `?payment_id=`, and bad input refused."""

from __future__ import annotations

import re
from typing import Any

from tests.integration.test_orders_support import PUBLIC_URL, Api, api

__all__ = ["api"]  # the fixture, imported so that pytest finds it here

CHALLENGE_CARD = {"number": "4000000000003220", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def _attr(page: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', page)
    assert found is not None, name
    return found.group(1)


async def _pay(api: Api, order_id: str, **extra: Any) -> dict[str, Any]:
    resp = await api.http.post(f"/checkout/{order_id}/pay", headers={"Idempotency-Key": f"k-{order_id}"},
                               json={"payment_method": {"type": "card", "card": CHALLENGE_CARD}, **extra})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_the_challenge_comes_back_to_the_checkout_in_the_modal_or_not(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m, currency="USD")
    paid = await _pay(api, order["id"])
    assert paid["status"] == "requires_action"
    assert paid["next_action"]["redirect_to_url"]["return_url"] == f"{PUBLIC_URL}/checkout/{order['id']}"

    framed = await api.order(m, currency="USD")
    paid = await _pay(api, framed["id"], embed_origin="https://shop.example:8443")
    assert paid["next_action"]["redirect_to_url"]["return_url"] == (
        f"{PUBLIC_URL}/checkout/{framed['id']}?embed=1&origin=https%3A%2F%2Fshop.example%3A8443")


async def test_an_embed_origin_that_is_not_an_origin_is_refused_and_nothing_is_paid(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m, currency="USD")
    for bad in ("javascript:alert(1)", "https://shop.example/path", "https://a.example 'unsafe-inline'", 7):
        resp = await api.http.post(f"/checkout/{order['id']}/pay", headers={"Idempotency-Key": f"bad-{bad}"},
                                   json={"payment_method": {"type": "card", "card": CHALLENGE_CARD},
                                         "embed_origin": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["error"]["param"] == "embed_origin"
    assert await api.count("SELECT count(*) FROM payments WHERE order_id = %s", order["id"]) == 0


async def test_the_page_shows_the_payment_it_is_given_back(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m, currency="USD", return_url="https://shop.example/done?x=1")
    paid = await _pay(api, order["id"])
    challenge = paid["next_action"]["redirect_to_url"]["url"]

    # not answered yet (the customer came back without answering): the challenge is offered again
    page = (await api.http.get(f"/checkout/{order['id']}", params={"payment_id": paid["id"]})).text
    assert _attr(page, "data-state") == "action"
    assert _attr(page, "data-return-url") == "https://shop.example/done?x=1"
    link = re.search(r'data-test-id="continue-challenge"\s+href="([^"]*)"', page)
    assert link is not None and link.group(1) == challenge
    status = (await api.http.get(f"/checkout/{order['id']}/status")).json()
    assert status["payment"] == {"id": paid["id"], "status": "requires_action", "method": "card",
                                 "failure_code": None, "failure_message": None, "challenge_url": challenge}

    # a payment of another order is ignored: the page shows this order as usual
    other = await api.order(m, currency="USD")
    page = (await api.http.get(f"/checkout/{other['id']}", params={"payment_id": paid["id"]})).text
    assert _attr(page, "data-state") == "form" and _attr(page, "data-payment-id") == ""
