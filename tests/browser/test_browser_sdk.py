"""The JS SDK on a merchant's own page (another origin than paygate's): helpers, the checkout modal, its
callbacks (API.md §11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.browser_support import Merchant, Site


def shop_page(api_url: str, publishable_key: str) -> str:
    """A merchant's checkout page: loads the SDK from paygate and records every callback in window.events."""
    return f"""<!doctype html><html><head><title>Shop</title>
<script src="{api_url}/sdk/paygate.js"></script></head>
<body><h1>My shop</h1><button id="buy">Buy</button>
<script>
  window.events = [];
  const paygate = new Paygate({{key: "{publishable_key}"}});
  window.buy = (orderId) => paygate.checkout({{
    orderId,
    onSuccess: (r) => window.events.push(["success", r]),
    onFailure: (r) => window.events.push(["failure", r]),
    onClose: (r) => window.events.push(["close", r]),
  }});
</script></body></html>"""


@pytest.fixture
def shop(page: Page, merchant: Merchant) -> Iterator[Page]:
    site = Site(shop_page(merchant.stack.api_url, merchant.publishable_key))
    page.goto(f"{site.origin}/cart")
    page.wait_for_function("typeof window.Paygate === 'function'")
    yield page
    site.close()


def shop_origin(page: Page) -> str:
    origin: str = page.evaluate("location.origin")
    return origin


def events(page: Page) -> list[Any]:
    value: list[Any] = page.evaluate("window.events")
    return value


def test_the_sdk_is_javascript(merchant: Merchant) -> None:
    resp = httpx.get(f"{merchant.stack.api_url}/sdk/paygate.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/javascript")
    assert "Paygate" in resp.text


def test_the_static_helpers_validate_cards_and_vpas(shop: Page) -> None:
    checks = shop.evaluate("""() => ({
      good: Paygate.validateCard("4111 1111 1111 1111"), bad: Paygate.validateCard("4111111111111112"),
      short: Paygate.validateCard("4111"), letters: Paygate.validateCard("abcd"),
      visa: Paygate.cardBrand("4242424242424242"), mc: Paygate.cardBrand("5555555555554444"),
      amex: Paygate.cardBrand("378282246310005"), unknown: Paygate.cardBrand("9999"),
      vpa: Paygate.validateVpa("success@upi"), noAt: Paygate.validateVpa("success"),
      badBank: Paygate.validateVpa("name@1bank"),
    })""")
    assert checks == {"good": True, "bad": False, "short": False, "letters": False, "visa": "visa",
                      "mc": "mastercard", "amex": "amex", "unknown": "unknown", "vpa": True, "noAt": False,
                      "badBank": False}
    refused = shop.evaluate("""() => { try { new Paygate({key: "sk_test_x"}); return "accepted"; }
                                        catch (e) { return e.message; } }""")
    assert "secret key" in refused


def test_the_modal_opens_the_checkout_and_the_close_button_calls_on_close(
    shop: Page, merchant: Merchant, screenshot_dir: Path,
) -> None:
    order = merchant.order(amount=2_500, currency="GBP")
    shop.evaluate("(id) => window.buy(id)", order["id"])
    modal = shop.locator('[data-test-id="payment-modal"]')
    expect(modal).to_be_visible()
    iframe = shop.locator('[data-test-id="payment-iframe"]')
    origin = quote(shop_origin(shop), safe="")
    expect(iframe).to_have_attribute("src", f"{merchant.stack.api_url}/checkout/{order['id']}"
                                            f"?key={merchant.publishable_key}&embed=1&origin={origin}")
    checkout = shop.frame_locator('[data-test-id="payment-iframe"]')
    expect(checkout.locator('[data-test-id="checkout-container"]')).to_be_visible()
    expect(checkout.locator('[data-test-id="order-amount"]')).to_have_text("£25.00 GBP")
    shop.screenshot(path=str(screenshot_dir / "paygate-sdk-modal.png"))

    shop.locator('[data-test-id="close-modal-button"]').click()
    expect(modal).to_have_count(0)
    assert events(shop) == [["close", {"orderId": order["id"]}]]


def test_paying_in_the_modal_calls_on_success(shop: Page, merchant: Merchant) -> None:
    order = merchant.order(amount=7_500, currency="USD")
    shop.evaluate("(id) => window.buy(id)", order["id"])
    checkout = shop.frame_locator('[data-test-id="payment-iframe"]')
    checkout.locator('[data-test-id="card-number-input"]').fill("4000000000000002")
    checkout.locator('[data-test-id="expiry-input"]').fill("12/30")
    checkout.locator('[data-test-id="cvv-input"]').fill("123")
    checkout.locator('[data-test-id="pay-button"]').click()
    expect(checkout.locator('[data-test-id="failure-state"]')).to_be_visible()
    shop.wait_for_function("window.events.length === 1")
    [(kind, failure)] = events(shop)
    assert kind == "failure" and failure["error"]["code"] == "card_declined"
    assert failure["paymentId"].startswith("pay_") and failure["orderId"] == order["id"]

    checkout.locator('[data-test-id="retry-button"]').click()
    checkout.locator('[data-test-id="card-number-input"]').fill("4242424242424242")
    checkout.locator('[data-test-id="expiry-input"]').fill("06/30")
    checkout.locator('[data-test-id="cvv-input"]').fill("456")
    checkout.locator('[data-test-id="pay-button"]').click()
    expect(checkout.locator('[data-test-id="success-state"]')).to_be_visible()
    shop.wait_for_function("window.events.length === 2")
    kind, success = events(shop)[1]
    payment_id = checkout.locator('[data-test-id="payment-id"]').inner_text()
    assert (kind, success) == ("success", {"orderId": order["id"], "paymentId": payment_id, "status": "captured"})
    assert merchant.get(f"/v1/payments/{payment_id}")["status"] == "captured"
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"

    # the customer closes the modal once done
    shop.locator('[data-test-id="close-modal-button"]').click()
    expect(shop.locator('[data-test-id="payment-modal"]')).to_have_count(0)
    assert events(shop)[2] == ["close", {"orderId": order["id"]}]


def test_the_public_api_still_serves_the_sdk_with_the_publishable_key(merchant: Merchant) -> None:
    """Merchants who build their own form pay orders through /v1 with the publishable key."""
    order = merchant.order(amount=1_000, currency="USD")
    public = merchant.pk.get(f"/v1/orders/{order['id']}")
    assert public.json() == {"id": order["id"], "object": "order", "amount": 1_000, "currency": "USD",
                             "status": "created"}
    paid = merchant.pk.post("/v1/payments", json={"order_id": order["id"], "payment_method": {
        "type": "card", "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}})
    assert paid.status_code == 201 and paid.json()["status"] == "captured"


def test_only_the_page_the_sdk_announced_may_frame_the_checkout(page: Page, merchant: Merchant) -> None:
    """frame-ancestors is 'self' plus the `origin` the SDK passes (render.frame_ancestors): a bare link, or
    one announcing another site, does not load in a frame on this site."""
    order = merchant.order(amount=2_500, currency="GBP")
    site = Site("<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1></body></html>")
    refusals: list[str] = []
    page.on("console", lambda msg: refusals.append(msg.text) if "frame-ancestors" in msg.text else None)
    try:
        page.goto(f"{site.origin}/")
        url = f"{merchant.stack.api_url}/checkout/{order['id']}"
        frames = {"bare": url, "other": f"{url}?embed=1&origin=http%3A%2F%2Fother.example",
                  "ok": f"{url}?embed=1&origin={quote(site.origin, safe='')}"}
        page.evaluate("""(frames) => {
          window.loaded = [];
          for (const [id, src] of Object.entries(frames)) {
            const f = document.createElement("iframe");
            f.id = id; f.src = src; f.onload = () => window.loaded.push(id);
            document.body.appendChild(f);
          }
        }""", frames)
        expect(page.frame_locator("#ok").locator('[data-test-id="checkout-container"]')).to_be_visible()
        page.wait_for_function("window.loaded.length === 3")  # the refused ones have loaded an error page
        for refused in ("bare", "other"):
            assert page.frame_locator(f"#{refused}").locator('[data-test-id="checkout-container"]').count() == 0
        assert [f.url for f in page.frames].count("chrome-error://chromewebdata/") == 2
        assert len(refusals) == 2
    finally:
        site.close()
