"""Customer authentication (3-D Secure style, API.md §15) as a customer meets it: the hosted checkout and
the SDK's modal through the bank's challenge page, to success and to failure; an order's return_url and
its `return-link`; and the merchant's dashboard showing payments that await authentication.

Screenshots land in /tmp/shots-3ds/ (PAYGATE_SCREENSHOT_DIR_3DS) for people to look at.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Frame, FrameLocator, Page, expect

from tests.browser.browser_support import Merchant, Site
from tests.browser.test_browser_dashboard import login
from tests.browser.test_browser_sdk import events, shop_page

CHALLENGE_CARD = "4000000000003220"  # §15: passes with the code 123456, any other code fails it
CODE = "123456"


def tid(name: str) -> str:
    return f'[data-test-id="{name}"]'


@pytest.fixture(scope="module")
def shots() -> Path:
    path = Path(os.environ.get("PAYGATE_SCREENSHOT_DIR_3DS", Path(tempfile.gettempdir()) / "shots-3ds"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def shop_site() -> Iterator[Site]:
    """The merchant's own site on another origin: where an order's return_url points."""
    site = Site("<!doctype html><html><head><title>Shop</title></head>"
                "<body><h1 id='thanks'>Thank you</h1></body></html>")
    yield site
    site.close()


def pay_with_challenge_card(where: Page | FrameLocator) -> None:
    where.locator(tid("card-number-input")).fill(CHALLENGE_CARD)
    where.locator(tid("expiry-input")).fill("12/30")
    where.locator(tid("cvv-input")).fill("123")
    where.locator(tid("pay-button")).click()


def answer_challenge(where: Page | FrameLocator, code: str) -> None:
    expect(where.locator(tid("challenge-form"))).to_be_visible()
    where.locator(tid("otp-input")).fill(code)
    where.locator(tid("otp-submit")).click()


def only_payment(merchant: Merchant, order_id: str) -> dict[str, Any]:
    [payment] = merchant.get(f"/v1/orders/{order_id}/payments")["data"]
    out: dict[str, Any] = payment
    return out


def statuses(payment: dict[str, Any]) -> list[str]:
    return [h["status"] for h in payment["status_history"]]


# --- the hosted checkout -------------------------------------------------------------------------------


def test_the_checkout_takes_the_customer_through_the_challenge_to_success(
    page: Page, merchant: Merchant, shots: Path,
) -> None:
    order = merchant.order(amount=4_200, currency="EUR")
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    # the whole page goes to the bank's challenge (a redirect, docs/authentication.md)
    expect(page.locator(tid("challenge-form"))).to_be_visible()
    assert page.url.startswith(merchant.stack.bank_url)
    waiting = only_payment(merchant, order["id"])
    assert (waiting["status"], waiting["amount_capturable"]) == ("requires_action", 0)
    assert waiting["next_action"]["redirect_to_url"]["url"].split("?")[0] == page.url.split("?")[0]
    page.screenshot(path=str(shots / "challenge-page.png"))

    answer_challenge(page, CODE)
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("failure-state"))).to_be_hidden()
    payment_id = page.locator(tid("payment-id")).inner_text()
    assert payment_id == waiting["id"]
    assert page.url.startswith(f"{order['checkout_url']}?") and f"payment_id={payment_id}" in page.url
    expect(page.locator(tid("return-link"))).to_be_hidden()  # the order has no return_url
    page.screenshot(path=str(shots / "checkout-success.png"))

    paid = merchant.get(f"/v1/payments/{payment_id}")
    assert (paid["status"], paid["amount_captured"], paid["next_action"]) == ("captured", 4_200, None)
    assert statuses(paid)[0] == "requires_action" and statuses(paid)[-1] == "captured"
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"


def test_a_wrong_code_fails_the_payment_and_the_customer_can_try_again(
    page: Page, merchant: Merchant, shots: Path,
) -> None:
    order = merchant.order(amount=1_500, currency="USD")
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    answer_challenge(page, "000000")
    expect(page.locator(tid("failure-state"))).to_be_visible()
    expect(page.locator(tid("success-state"))).to_be_hidden()
    expect(page.locator(tid("retry-button"))).to_be_visible()
    page.screenshot(path=str(shots / "checkout-failure-wrong-code.png"))
    failed = only_payment(merchant, order["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", "authentication_failed")
    # told to the customer in their terms, not the API's message for the merchant
    expect(page.locator(tid("failure-message"))).to_have_text(
        "Your bank could not confirm that it was you, so the payment was not made.")

    # a new attempt with a card that needs no challenge pays the order
    page.locator(tid("retry-button")).click()
    page.locator(tid("card-number-input")).fill("4111111111111111")
    page.locator(tid("expiry-input")).fill("12/30")
    page.locator(tid("cvv-input")).fill("123")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"


def test_cancelling_the_challenge_fails_the_payment(page: Page, merchant: Merchant, shots: Path) -> None:
    order = merchant.order(amount=900, currency="GBP")
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    expect(page.locator(tid("challenge-form"))).to_be_visible()
    page.locator(tid("challenge-cancel")).click()
    expect(page.locator(tid("failure-state"))).to_be_visible()
    expect(page.locator(tid("retry-button"))).to_be_visible()
    page.screenshot(path=str(shots / "checkout-failure-cancelled.png"))
    cancelled = only_payment(merchant, order["id"])
    assert cancelled["status"] == "failed" and cancelled["failure_code"] == "authentication_failed"
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "attempted"


def test_coming_back_before_answering_offers_the_challenge_again(page: Page, merchant: Merchant, shots: Path) -> None:
    order = merchant.order(amount=3_000, currency="USD")
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    expect(page.locator(tid("challenge-form"))).to_be_visible()
    page.go_back()  # the customer returns to the checkout without answering
    expect(page.locator(tid("action-state"))).to_be_visible()
    waiting = only_payment(merchant, order["id"])
    expect(page.locator(tid("continue-challenge"))).to_have_attribute(
        "href", waiting["next_action"]["redirect_to_url"]["url"])
    page.screenshot(path=str(shots / "checkout-awaiting-challenge.png"))
    page.locator(tid("continue-challenge")).click()
    answer_challenge(page, CODE)
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("payment-id"))).to_have_text(waiting["id"])
    assert merchant.get(f"/v1/payments/{waiting['id']}")["status"] == "captured"


def test_a_payment_the_shop_voided_goes_back_to_the_shop_as_voided(
    page: Page, merchant: Merchant, shop_site: Site,
) -> None:
    order = merchant.order(amount=3_000, currency="USD", return_url=f"{shop_site.origin}/back")
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    expect(page.locator(tid("challenge-form"))).to_be_visible()
    page.go_back()  # waiting on the checkout, which follows the payment
    expect(page.locator(tid("action-state"))).to_be_visible()
    waiting = only_payment(merchant, order["id"])
    voided = merchant.sk.post(f"/v1/payments/{waiting['id']}/void")
    assert voided.status_code == 200 and voided.json()["status"] == "voided", voided.text
    expect(page.locator(tid("failure-state"))).to_be_visible()
    # the shop is told the payment's real status, not "failed"
    expect(page.locator(tid("return-link"))).to_have_attribute(
        "href", f"{shop_site.origin}/back?payment_id={waiting['id']}&status=voided")


def test_the_customer_may_give_up_the_challenge_and_pay_another_way(page: Page, merchant: Merchant) -> None:
    order = merchant.order(amount=3_000, currency="USD")
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    expect(page.locator(tid("challenge-form"))).to_be_visible()
    page.go_back()
    expect(page.locator(tid("action-state"))).to_be_visible()
    page.locator(tid("pay-another-way")).click()
    page.locator(tid("card-number-input")).fill("4111111111111111")
    page.locator(tid("expiry-input")).fill("12/30")
    page.locator(tid("cvv-input")).fill("123")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    paid_id = page.locator(tid("payment-id")).inner_text()
    by_id = {p["id"]: p["status"] for p in merchant.get(f"/v1/orders/{order['id']}/payments")["data"]}
    assert by_id.pop(paid_id) == "captured"
    assert list(by_id.values()) == ["voided"]  # the abandoned challenge can no longer pay the order
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"


def test_a_paid_order_with_a_return_url_sends_the_customer_back_to_the_shop(
    page: Page, merchant: Merchant, shop_site: Site, shots: Path,
) -> None:
    back = f"{shop_site.origin}/thanks?ref=cart-7&lang=en"
    order = merchant.order(amount=2_000, currency="USD", return_url=back)
    assert order["return_url"] == back
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    answer_challenge(page, CODE)
    expect(page.locator(tid("success-state"))).to_be_visible()
    link = page.locator(tid("return-link"))
    expect(link).to_be_visible()
    payment_id = page.locator(tid("payment-id")).inner_text()
    expected = f"{back}&payment_id={payment_id}&status=captured"
    expect(link).to_have_attribute("href", expected)
    page.screenshot(path=str(shots / "return-link.png"))
    page.wait_for_url(expected)  # followed by itself after 3 seconds
    expect(page.locator("#thanks")).to_have_text("Thank you")
    assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"

    # the standalone success page (where a reload of the paid checkout lands) leads back the same way
    page.goto(f"{order['checkout_url']}/success?payment_id={payment_id}")
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("return-link"))).to_have_attribute("href", expected)


def test_a_failed_payment_with_a_return_url_goes_back_too_unless_the_customer_retries(
    page: Page, merchant: Merchant, shop_site: Site, shots: Path,
) -> None:
    back = f"{shop_site.origin}/checkout-result#top"
    order = merchant.order(amount=2_000, currency="USD", return_url=back)
    page.clock.install()  # the page's timers run on a clock this test can move: an absence is proved without waiting
    page.goto(order["checkout_url"])
    pay_with_challenge_card(page)
    answer_challenge(page, "111111")
    expect(page.locator(tid("failure-state"))).to_be_visible()
    failed = only_payment(merchant, order["id"])
    expected = f"{shop_site.origin}/checkout-result?payment_id={failed['id']}&status=failed#top"
    expect(page.locator(tid("return-link"))).to_have_attribute("href", expected)
    page.screenshot(path=str(shots / "return-link-failure.png"))
    page.locator(tid("retry-button")).click()  # trying again stays on the checkout
    expect(page.locator(tid("return-link"))).to_be_hidden()
    expect(page.locator(tid("pay-button"))).to_be_visible()
    # still on the checkout once the 3 seconds have passed: the next payment's outcome decides
    page.clock.pause_at(page.evaluate("Date.now()"))
    page.clock.run_for(5_000)  # fires every timer due within 5 s, the return countdown's included were it left
    assert page.url.startswith(order["checkout_url"])
    expect(page.locator(tid("pay-button"))).to_be_visible()
    page.clock.resume()

    page.reload()  # the returned page of the failed payment leads back to the shop when left alone
    expect(page.locator(tid("failure-state"))).to_be_visible()
    page.wait_for_url(expected)


@pytest.mark.parametrize(("card", "status"), [("4111111111111111", "captured"), ("4000000000000002", "failed")])
def test_the_return_link_follows_cards_without_a_challenge_too(
    page: Page, merchant: Merchant, shop_site: Site, card: str, status: str,
) -> None:
    order = merchant.order(amount=700, currency="EUR", return_url=f"{shop_site.origin}/back")
    page.goto(order["checkout_url"])
    page.locator(tid("card-number-input")).fill(card)
    page.locator(tid("expiry-input")).fill("12/30")
    page.locator(tid("cvv-input")).fill("123")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state" if status == "captured" else "failure-state"))).to_be_visible()
    payment = only_payment(merchant, order["id"])
    assert payment["status"] == status
    expected = f"{shop_site.origin}/back?payment_id={payment['id']}&status={status}"
    expect(page.locator(tid("return-link"))).to_have_attribute("href", expected)
    page.wait_for_url(expected)


# --- the SDK's modal -----------------------------------------------------------------------------------


@pytest.fixture
def shop(page: Page, merchant: Merchant) -> Iterator[Page]:
    site = Site(shop_page(merchant.stack.api_url, merchant.publishable_key))
    page.goto(f"{site.origin}/cart")
    page.wait_for_function("typeof window.Paygate === 'function'")
    yield page
    site.close()


def modal_frame(shop: Page) -> Frame:
    frame = shop.locator(tid("payment-iframe")).element_handle().content_frame()
    assert frame is not None
    return frame


def test_the_challenge_happens_inside_the_sdk_modal_and_on_success_fires(
    shop: Page, merchant: Merchant, shots: Path,
) -> None:
    order = merchant.order(amount=3_300, currency="USD")
    shop.evaluate("(id) => window.buy(id)", order["id"])
    checkout = shop.frame_locator(tid("payment-iframe"))
    pay_with_challenge_card(checkout)
    expect(checkout.locator(tid("challenge-form"))).to_be_visible()
    assert modal_frame(shop).url.startswith(merchant.stack.bank_url)  # the iframe went to the bank...
    assert shop.url.endswith("/cart")  # ...the shop's page stayed where it was
    shop.screenshot(path=str(shots / "sdk-challenge.png"))

    answer_challenge(checkout, CODE)
    expect(checkout.locator(tid("success-state"))).to_be_visible()
    shop.wait_for_function("window.events.length === 1")
    payment_id = checkout.locator(tid("payment-id")).inner_text()
    assert events(shop) == [["success", {"orderId": order["id"], "paymentId": payment_id, "status": "captured"}]]
    shop.screenshot(path=str(shots / "sdk-success.png"))
    assert merchant.get(f"/v1/payments/{payment_id}")["status"] == "captured"
    expect(shop.locator(tid("payment-modal"))).to_be_visible()  # no return_url: the customer closes it


def test_a_failed_challenge_in_the_modal_fires_on_failure(shop: Page, merchant: Merchant) -> None:
    order = merchant.order(amount=3_300, currency="USD")
    shop.evaluate("(id) => window.buy(id)", order["id"])
    checkout = shop.frame_locator(tid("payment-iframe"))
    pay_with_challenge_card(checkout)
    answer_challenge(checkout, "654321")
    expect(checkout.locator(tid("failure-state"))).to_be_visible()
    shop.wait_for_function("window.events.length === 1")
    [(kind, failure)] = events(shop)
    failed = only_payment(merchant, order["id"])
    assert kind == "failure" and failure["paymentId"] == failed["id"]
    assert failure["error"]["code"] == "authentication_failed"
    expect(checkout.locator(tid("retry-button"))).to_be_visible()


def test_with_a_return_url_the_modal_closes_instead_of_leaving_the_shop(
    shop: Page, merchant: Merchant, shop_site: Site, shots: Path,
) -> None:
    order = merchant.order(amount=1_250, currency="USD", return_url=f"{shop_site.origin}/done")
    shop.evaluate("(id) => window.buy(id)", order["id"])
    checkout = shop.frame_locator(tid("payment-iframe"))
    pay_with_challenge_card(checkout)
    answer_challenge(checkout, CODE)
    expect(checkout.locator(tid("success-state"))).to_be_visible()
    expect(checkout.locator(tid("closing-notice"))).to_be_visible()
    expect(checkout.locator(tid("return-link"))).to_have_count(0)  # the modal closes instead
    shop.screenshot(path=str(shots / "sdk-closing.png"))
    expect(shop.locator(tid("payment-modal"))).to_have_count(0)  # closed after 3 seconds
    payment_id = only_payment(merchant, order["id"])["id"]
    assert events(shop) == [["success", {"orderId": order["id"], "paymentId": payment_id, "status": "captured"}],
                            ["close", {"orderId": order["id"]}]]
    assert shop.url.endswith("/cart")  # the shop's page never left for the return_url


def test_the_payment_gateway_drop_in_goes_through_the_challenge_too(page: Page, merchant: Merchant) -> None:
    """`/checkout.js`'s PaymentGateway (API.md §11 v2) opens the same modal: a failed challenge leaves it open
    for another try, a passed one calls onSuccess with {paymentId}."""
    api = merchant.stack.api_url
    site = Site(f"""<!doctype html><html><head><title>Old shop</title><script src="{api}/checkout.js"></script>
</head><body><h1>Old shop</h1><script>
  window.events = [];
  window.buy = (orderId) => new PaymentGateway({{
    key: "{merchant.publishable_key}", orderId,
    onSuccess: (r) => window.events.push(["success", r.paymentId]),
    onFailure: (r) => window.events.push(["failure", r.error.code]),
  }}).open();
</script></body></html>""")
    try:
        page.goto(f"{site.origin}/cart")
        page.wait_for_function("typeof window.PaymentGateway === 'function'")
        order = merchant.order(amount=6_000, currency="USD")
        page.evaluate("(id) => window.buy(id)", order["id"])
        checkout = page.frame_locator(tid("payment-iframe"))
        pay_with_challenge_card(checkout)
        answer_challenge(checkout, "999999")
        expect(checkout.locator(tid("failure-state"))).to_be_visible()
        page.wait_for_function("window.events.length === 1")
        expect(page.locator(tid("payment-modal"))).to_be_visible()

        checkout.locator(tid("retry-button")).click()
        pay_with_challenge_card(checkout)
        answer_challenge(checkout, CODE)
        expect(checkout.locator(tid("success-state"))).to_be_visible()
        page.wait_for_function("window.events.length === 2")
        paid = [p for p in merchant.get(f"/v1/orders/{order['id']}/payments")["data"] if p["status"] == "captured"]
        assert events(page) == [["failure", "authentication_failed"], ["success", paid[0]["id"]]]
    finally:
        site.close()


# --- the dashboard -------------------------------------------------------------------------------------


def test_the_dashboard_shows_and_filters_payments_awaiting_authentication(
    page: Page, merchant: Merchant, shots: Path,
) -> None:
    plain = merchant.pay(1_000)
    waiting = merchant.pay(2_500, card={"number": CHALLENGE_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"})
    assert waiting["status"] == "requires_action"
    login(page, merchant)
    page.goto(f"{merchant.stack.api_url}/dashboard/payments")
    row = page.locator(f'{tid("transaction-row")}[data-payment-id="{waiting["id"]}"]')
    expect(row.locator(tid("transaction-status"))).to_have_text("requires action")

    page.locator(tid("status-filter")).select_option("requires_action")
    page.locator(tid("search-button")).click()
    expect(page.locator(tid("transaction-row"))).to_have_count(1)
    assert page.locator(tid("transaction-row")).get_attribute("data-payment-id") == waiting["id"]
    expect(page.locator(tid("status-filter"))).to_have_value("requires_action")
    page.screenshot(path=str(shots / "dashboard-filter.png"), full_page=True)
    assert plain["status"] == "captured"

    page.locator(tid("transaction-row")).locator("a").click()
    expect(page.locator(tid("payment-status"))).to_have_text("requires action")
    expect(page.locator(tid("next-action-url"))).to_have_text(waiting["next_action"]["redirect_to_url"]["url"])
    page.screenshot(path=str(shots / "dashboard-payment.png"), full_page=True)

    # the merchant may cancel it: a void on requires_action (§15.4)
    page.on("dialog", lambda d: d.accept())
    page.locator(tid("void-button")).click()
    expect(page.locator(tid("payment-status"))).to_have_text("voided")
    assert merchant.get(f"/v1/payments/{waiting['id']}")["status"] == "voided"


def test_the_dashboard_says_why_a_payment_failed_authentication(page: Page, merchant: Merchant) -> None:
    failed = merchant.pay(2_500, card={"number": CHALLENGE_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"})
    # the customer answers the bank's page wrongly (the form's POST, then the redirects back to paygate)
    answered = httpx.post(failed["next_action"]["redirect_to_url"]["url"], data={"otp": "000000"},
                          follow_redirects=True, timeout=30)
    assert answered.status_code == 200
    assert merchant.get(f"/v1/payments/{failed['id']}")["failure_code"] == "authentication_failed"
    login(page, merchant)
    page.goto(f"{merchant.stack.api_url}/dashboard/payments/{failed['id']}")
    expect(page.locator(tid("payment-status"))).to_have_text("failed")
    expect(page.locator(tid("authentication-status"))).to_have_text("The customer failed their bank's challenge.")
    expect(page.locator(tid("next-action-url"))).to_have_count(0)
