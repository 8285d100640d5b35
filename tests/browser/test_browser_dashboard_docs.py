"""The integration docs page in Chromium: reached from the nav, its three sections and snippets, copy
buttons that put the snippet's exact text on the clipboard, and the SDK snippet run as shown on a
merchant's own page (another origin), paying an order through its modal."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.browser_support import Merchant, Site
from tests.browser.test_browser_dashboard import login, tid

SECTIONS = ("section-create-order", "section-sdk-integration", "section-webhook-verification")
SNIPPETS = ("code-snippet-create-order", "code-snippet-sdk", "code-snippet-webhook")


def open_docs(page: Page, merchant: Merchant) -> None:
    login(page, merchant)
    expect(page.locator(tid("stats-container"))).to_be_visible()
    page.locator(tid("nav-docs")).click()
    expect(page).to_have_url(f"{merchant.stack.api_url}/dashboard/docs")
    expect(page.locator(tid("api-docs"))).to_be_visible()


def test_the_docs_page_shows_three_filled_sections_and_copies_snippets(
    page: Page, context: BrowserContext, merchant: Merchant, screenshot_dir: Path,
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=merchant.stack.api_url)
    open_docs(page, merchant)
    docs = page.locator(tid("api-docs"))
    for section, snippet in zip(SECTIONS, SNIPPETS, strict=True):
        expect(docs.locator(tid(section))).to_be_visible()
        expect(docs.locator(tid(section)).locator(tid(snippet))).to_be_visible()
    expect(page.locator(tid("code-snippet-sdk"))).to_contain_text(f'key: "{merchant.publishable_key}"')
    expect(page.locator(tid("code-snippet-create-order"))).to_contain_text(f"{merchant.stack.api_url}/v1/orders")
    expect(page.locator(tid("section-create-order"))).to_contain_text("this page cannot show it")
    assert merchant.secret_key not in page.content()
    expect(page.locator('.nav a[aria-current="page"]')).to_have_text("Docs")
    page.screenshot(path=str(screenshot_dir / "docs-page.png"), full_page=True)  # as first seen, from the top

    for button, target in (("copy-create-order-curl", "code-snippet-create-order-curl"),
                           ("copy-create-order-python", "code-snippet-create-order-python"),
                           ("copy-sdk", "code-snippet-sdk"), ("copy-webhook", "code-snippet-webhook")):
        page.locator(tid(button)).click()
        expect(page.locator(tid(button))).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        shown = page.locator(tid(target)).text_content()
        assert copied == shown and copied.strip(), button


def test_the_docs_page_needs_a_login(page: Page, merchant: Merchant) -> None:
    page.goto(f"{merchant.stack.api_url}/dashboard/docs")
    expect(page).to_have_url(f"{merchant.stack.api_url}/dashboard/login")
    expect(page.locator(tid("login-form"))).to_be_visible()


def test_the_sdk_snippet_as_shown_opens_the_checkout_and_pays(page: Page, merchant: Merchant) -> None:
    open_docs(page, merchant)
    snippet = page.locator(tid("code-snippet-sdk")).text_content() or ""
    assert snippet.count("ord_…") == 1
    order = merchant.order(amount=4_200, currency="USD")
    site = Site("<!doctype html><html><head><title>My shop</title></head><body><h1>Cart</h1>\n"
                + snippet.replace("ord_…", order["id"]) + "</body></html>")
    try:
        page.goto(f"{site.origin}/cart")
        page.locator("#pay-button").click()
        expect(page.locator(tid("payment-modal"))).to_be_visible()
        checkout = page.frame_locator(tid("payment-iframe"))
        expect(checkout.locator(tid("order-amount"))).to_have_text("$42.00 USD")
        checkout.locator(tid("card-number-input")).fill("4111111111111111")
        checkout.locator(tid("expiry-input")).fill("12/30")
        checkout.locator(tid("cvv-input")).fill("123")
        checkout.locator(tid("pay-button")).click()
        # the snippet's onSuccess sends the customer to the merchant's thank-you page with the payment id
        expect(page).to_have_url(re.compile(rf"^{re.escape(site.origin)}/thank-you\?payment=pay_[0-9a-z]+$"))
        payment_id = page.url.rsplit("=", 1)[1]
        assert merchant.get(f"/v1/payments/{payment_id}")["status"] == "captured"
        assert merchant.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    finally:
        site.close()
