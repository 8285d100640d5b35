"""The hosted checkout as a customer uses it (API.md §7, §11): card and UPI, declines, invalid input, a paid
order, and what the merchant's API says afterwards."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, Request, expect

from tests.browser.browser_support import Merchant, new_merchant


def tid(name: str) -> str:
    return f'[data-test-id="{name}"]'


def fill_card(page: Page, number: str, expiry: str = "12/30", cvv: str = "123") -> None:
    page.locator(tid("card-number-input")).fill(number)
    page.locator(tid("expiry-input")).fill(expiry)
    page.locator(tid("cvv-input")).fill(cvv)


def test_a_good_card_pays_the_order_and_the_api_agrees(page: Page, merchant: Merchant, screenshot_dir: Path) -> None:
    order = merchant.order(amount=5_000, currency="USD", receipt="receipt-42")
    page.goto(order["checkout_url"])
    expect(page.locator(tid("checkout-container"))).to_be_visible()
    expect(page.locator(tid("order-amount"))).to_have_text("$50.00 USD")
    for name in ("method-card", "method-upi", "card-number-input", "expiry-input", "cvv-input", "pay-button"):
        expect(page.locator(tid(name))).to_be_visible()
    fill_card(page, "4111 1111 1111 1111", "12/30", "123")
    expect(page.locator(tid("card-brand"))).to_have_text("Visa")
    page.screenshot(path=str(screenshot_dir / "paygate-checkout.png"))

    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    payment_id = page.locator(tid("payment-id")).inner_text()
    assert payment_id.startswith("pay_")
    expect(page.locator(tid("failure-state"))).to_be_hidden()
    page.screenshot(path=str(screenshot_dir / "paygate-checkout-success.png"))

    payment = merchant.get(f"/v1/payments/{payment_id}")
    assert (payment["status"], payment["amount"], payment["currency"], payment["order_id"]) == (
        "captured", 5_000, "USD", order["id"])
    assert payment["payment_method"]["card"]["last4"] == "1111"
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"

    # Coming back to a paid order's page shows that it is paid, not a form to pay it again.
    page.reload()
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("payment-id"))).to_have_text(payment_id)
    expect(page.locator(tid("pay-button"))).to_be_hidden()


def test_a_declined_card_shows_the_failure_and_the_customer_can_try_again(page: Page, merchant: Merchant) -> None:
    order = merchant.order(amount=1_999, currency="EUR")
    page.goto(order["checkout_url"])
    expect(page.locator(tid("order-amount"))).to_have_text("€19.99 EUR")
    fill_card(page, "4000000000000002")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("failure-state"))).to_be_visible()
    expect(page.locator(tid("failure-message"))).to_contain_text("declined")
    expect(page.locator(tid("success-state"))).to_be_hidden()
    failed = merchant.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert [(p["status"], p["failure_code"]) for p in failed] == [("failed", "card_declined")]
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "attempted"

    page.locator(tid("retry-button")).click()
    fill_card(page, "4111111111111111")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"


def test_an_invalid_card_number_is_refused_in_the_page_without_any_request(page: Page, merchant: Merchant) -> None:
    order = merchant.order()
    page.goto(order["checkout_url"])
    sent: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "POST":
            sent.append(request.url)

    page.on("request", on_request)
    card = page.locator(tid("card-number-input"))
    card.fill("5555555555554444")
    expect(page.locator(tid("card-brand"))).to_have_text("Mastercard")
    fill_card(page, "4111111111111112")  # fails Luhn
    page.locator(tid("pay-button")).click()
    error = page.locator(tid("card-number-error"))
    expect(error).to_be_visible()
    expect(error).to_contain_text("invalid")
    expect(card).to_have_attribute("aria-invalid", "true")
    expect(page.locator(tid("processing-state"))).to_be_hidden()
    # a malformed expiry is caught too
    fill_card(page, "4111111111111111", expiry="13/30")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("expiry-error"))).to_be_visible()
    assert sent == []
    assert merchant.get(f"/v1/orders/{order['id']}/payments")["data"] == []
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "created"


def test_upi_shows_processing_until_the_bank_approves(page: Page, merchant: Merchant) -> None:
    order = merchant.order(amount=49_900, currency="INR")
    page.goto(order["checkout_url"])
    expect(page.locator(tid("order-amount"))).to_have_text("₹499.00 INR")
    page.locator(tid("method-upi")).click()
    expect(page.locator(tid("card-number-input"))).to_be_hidden()
    vpa = page.locator(tid("vpa-input"))
    vpa.fill("not-a-vpa")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("vpa-error"))).to_be_visible()

    vpa.fill("success@upi")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("processing-state"))).to_be_visible()
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("processing-state"))).to_be_hidden()
    payment_id = page.locator(tid("payment-id")).inner_text()
    payment = merchant.get(f"/v1/payments/{payment_id}")
    assert payment["status"] == "captured"
    assert payment["payment_method"] == {"type": "upi", "upi": {"vpa": "success@upi"}}
    assert [h["status"] for h in payment["status_history"]] == ["pending", "captured"]
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"


def test_upi_declined_by_the_customer_shows_the_failure(page: Page, merchant: Merchant) -> None:
    order = merchant.order(amount=10_000, currency="INR")
    page.goto(order["checkout_url"])
    page.locator(tid("method-upi")).click()
    page.locator(tid("vpa-input")).fill("failure@upi")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("processing-state"))).to_be_visible()
    expect(page.locator(tid("failure-state"))).to_be_visible()
    assert [p["status"] for p in merchant.get(f"/v1/orders/{order['id']}/payments")["data"]] == ["failed"]


def test_unknown_orders_and_foreign_keys_get_no_checkout(page: Page, merchant: Merchant) -> None:
    response = page.goto(f"{merchant.stack.api_url}/checkout/ord_doesnotexist")
    assert response is not None and response.status == 404
    expect(page.locator(tid("checkout-error"))).to_contain_text("not valid")

    other = new_merchant(merchant.stack.database_url)
    order = merchant.order()
    response = page.goto(f"{order['checkout_url']}?key={other['publishable_key']}&embed=1")
    assert response is not None and response.status == 403
    expect(page.locator(tid("pay-button"))).to_have_count(0)
    response = page.goto(f"{order['checkout_url']}?key={merchant.publishable_key}&embed=1")
    assert response is not None and response.status == 200
    expect(page.locator(tid("pay-button"))).to_be_visible()


def test_a_second_tab_follows_the_payment_in_progress_instead_of_paying_twice(page: Page, merchant: Merchant) -> None:
    order = merchant.order(amount=20_000, currency="INR")
    page.goto(order["checkout_url"])  # the customer has the page open here...
    fill_card(page, "4111111111111111")
    upi = merchant.pk.post("/v1/payments", json={"order_id": order["id"],  # ...and pays by UPI elsewhere
                                                 "payment_method": {"type": "upi", "upi": {"vpa": "success@upi"}}})
    assert upi.status_code == 201 and upi.json()["status"] == "pending"
    page.locator(tid("pay-button")).click()  # the order is being (or has been) paid: 409, not a second charge
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("payment-id"))).to_have_text(upi.json()["id"])
    assert [p["id"] for p in merchant.get(f"/v1/orders/{order['id']}/payments")["data"]] == [upi.json()["id"]]
