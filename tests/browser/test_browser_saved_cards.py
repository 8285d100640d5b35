"""The hosted checkout of an order for a customer (API.md §16): its saved cards are listed (brand, last4),
one click chooses one and it pays on-session without a CVC; a new card saved with the checkbox is listed
on the customer's next checkout."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.browser_support import Merchant
from tests.browser.test_browser_dashboard import login


def tid(name: str) -> str:
    return f'[data-test-id="{name}"]'


def _customer(merchant: Merchant) -> str:
    r = merchant.sk.post("/v1/customers", json={"email": "ada@example.com", "name": "Ada"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_saved_card_is_chosen_with_a_click_and_pays_the_order(page: Page, merchant: Merchant,
                                                                  screenshot_dir: Path) -> None:
    customer = _customer(merchant)
    r = merchant.sk.post("/v1/payment_methods", json={"customer": customer, "type": "card", "card": {
        "number": "4242424242424242", "exp_month": 6, "exp_year": 2030, "cvc": "456"}})
    assert r.status_code == 201, r.text
    pm = r.json()
    order = merchant.order(amount=2_500, currency="USD", customer=customer)
    page.goto(order["checkout_url"])
    card = page.locator(tid("saved-card"))
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Visa")
    expect(card).to_contain_text("4242")
    expect(page.locator(tid("save-card-checkbox"))).to_be_visible()  # for a new card
    card.click()
    expect(card).to_have_attribute("aria-pressed", "true")
    expect(page.locator(tid("card-number-input"))).to_be_hidden()
    expect(page.locator(tid("cvv-input"))).to_be_hidden()  # no CVC for a saved card
    page.screenshot(path=str(screenshot_dir / "i12-checkout-saved.png"))
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    payment_id = page.locator(tid("payment-id")).inner_text()
    payment = merchant.get(f"/v1/payments/{payment_id}")
    assert (payment["status"], payment["customer"], payment["order_id"]) == ("captured", customer, order["id"])
    assert payment["payment_method"]["id"] == pm["id"] and payment["payment_method"]["card"]["last4"] == "4242"

    # the dashboard's customer page lists the payment (payments.customer)
    login(page, merchant)
    page.goto(f"{merchant.stack.api_url}/dashboard/customers/{customer}")
    rows = page.locator(f'{tid("customer-payments")} {tid("transaction-row")}')
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-payment-id", payment_id)
    page.screenshot(path=str(screenshot_dir / "i12-dashboard-customer-payments.png"))


def test_a_new_card_saved_with_the_checkbox_is_listed_next_time(page: Page, merchant: Merchant,
                                                                screenshot_dir: Path) -> None:
    customer = _customer(merchant)
    first = merchant.order(amount=1_000, currency="USD", customer=customer)
    page.goto(first["checkout_url"])
    expect(page.locator(tid("saved-card"))).to_have_count(0)
    page.locator(tid("card-number-input")).fill("4111 1111 1111 1111")
    page.locator(tid("expiry-input")).fill("12/30")
    page.locator(tid("cvv-input")).fill("123")
    page.locator(tid("save-card-checkbox")).check()
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    saved = merchant.get(f"/v1/customers/{customer}/payment_methods")["data"]
    assert [m["card"]["last4"] for m in saved] == ["1111"]

    second = merchant.order(amount=1_500, currency="USD", customer=customer)
    page.goto(second["checkout_url"])
    card = page.locator(tid("saved-card"))
    expect(card).to_have_count(1)
    expect(card).to_contain_text("1111")
    page.screenshot(path=str(screenshot_dir / "i12-checkout-saved-next-time.png"))
    card.click()
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    assert merchant.get(f"/v1/orders/{second['id']}")["status"] == "paid"


def test_an_order_without_a_customer_offers_neither_saved_cards_nor_saving(page: Page, merchant: Merchant) -> None:
    page.goto(merchant.order(amount=1_000, currency="USD")["checkout_url"])
    expect(page.locator(tid("card-number-input"))).to_be_visible()
    expect(page.locator(tid("saved-card"))).to_have_count(0)
    expect(page.locator(tid("save-card-checkbox"))).to_have_count(0)
