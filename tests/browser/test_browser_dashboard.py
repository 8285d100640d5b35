"""The merchant dashboard as a merchant uses it (API.md §11): login, stats, payments with their actions,
webhooks with their delivery log; and the protections around it (session cookie, CSRF)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect
from standardwebhooks.webhooks import Webhook

from tests.browser.browser_support import Merchant, Receiver, new_merchant
from tests.polling import wait_for


def tid(name: str) -> str:
    return f'[data-test-id="{name}"]'


def login(page: Page, merchant: Merchant, password: str | None = None, email: str | None = None) -> None:
    page.goto(f"{merchant.stack.api_url}/dashboard")
    expect(page.locator(tid("login-form"))).to_be_visible()
    page.locator(tid("email-input")).fill(email or merchant.email)
    page.locator(tid("password-input")).fill(password or merchant.password)
    page.locator(tid("login-button")).click()


def row_ids(page: Page) -> list[str]:
    return [r.get_attribute("data-payment-id") or "" for r in page.locator(tid("transaction-row")).all()]


def test_login_refuses_a_wrong_password_then_shows_stats_and_credentials(
    page: Page, context: BrowserContext, merchant: Merchant, screenshot_dir: Path,
) -> None:
    good = [merchant.pay(5_000, customer_id="cust-1"), merchant.pay(5_000, customer_id="cust-2")]
    declined = merchant.pay(2_000, card={"number": "4000000000000002", "exp_month": 12, "exp_year": 2030,
                                         "cvc": "123"})
    assert [p["status"] for p in good] == ["captured", "captured"] and declined["status"] == "failed"

    response = page.goto(f"{merchant.stack.api_url}/dashboard")
    assert response is not None and page.url.endswith("/dashboard/login")
    login(page, merchant, password="not-the-password")
    expect(page.locator(tid("login-error"))).to_have_text("Email or password is incorrect.")
    page.screenshot(path=str(screenshot_dir / "paygate-dashboard-login.png"))
    expect(page.locator(tid("stats-container"))).to_have_count(0)
    assert not [c for c in context.cookies() if c["name"] == "paygate_session"]

    login(page, merchant)
    expect(page.locator(tid("stats-container"))).to_be_visible()
    expect(page.locator(tid("total-transactions"))).to_have_text("3")
    expect(page.locator(tid("total-amount"))).to_have_text("$100.00 USD")
    expect(page.locator(tid("success-rate"))).to_have_text("66.7%")
    credentials = page.locator(tid("api-credentials"))
    expect(credentials).to_contain_text(merchant.merchant_id)
    expect(credentials).to_contain_text(f"{merchant.secret_key[:8]}…{merchant.secret_key[-4:]}")
    expect(credentials).to_contain_text(f"{merchant.publishable_key[:8]}…{merchant.publishable_key[-4:]}")
    assert merchant.secret_key not in page.content()
    assert sorted(row_ids(page)) == sorted([*(p["id"] for p in good), declined["id"]])
    page.screenshot(path=str(screenshot_dir / "paygate-dashboard-home.png"), full_page=True)

    [session] = [c for c in context.cookies() if c["name"] == "paygate_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Lax" and session["path"] == "/dashboard"

    page.locator(tid("logout-button")).click()
    expect(page.locator(tid("login-form"))).to_be_visible()
    page.goto(f"{merchant.stack.api_url}/dashboard/payments")
    expect(page.locator(tid("login-form"))).to_be_visible()  # the session is gone server-side too


def test_the_payments_table_searches_and_filters(page: Page, merchant: Merchant, screenshot_dir: Path) -> None:
    a1 = merchant.pay(1_000, customer_id="cust-alice")
    b1 = merchant.pay(2_000, customer_id="cust-bob")
    a2 = merchant.pay(3_000, customer_id="cust-alice", capture_method="manual")
    failed = merchant.pay(4_000, customer_id="cust-bob", card={"number": "4000000000009995", "exp_month": 12,
                                                              "exp_year": 2030, "cvc": "123"})
    login(page, merchant)
    page.locator("nav >> text=Payments").click()
    expect(page.locator(tid("transactions-table"))).to_be_visible()
    assert row_ids(page) == [failed["id"], a2["id"], b1["id"], a1["id"]]  # newest first

    page.locator(tid("status-filter")).select_option("failed")
    page.locator(tid("search-button")).click()
    expect(page.locator(tid("transaction-row"))).to_have_count(1)
    assert row_ids(page) == [failed["id"]]
    expect(page.locator(tid("transaction-status"))).to_have_text("failed")

    page.locator(tid("status-filter")).select_option("")
    page.locator(tid("search-input")).fill("cust-alice")
    page.locator(tid("search-button")).click()
    expect(page.locator(tid("transaction-row"))).to_have_count(2)
    assert row_ids(page) == [a2["id"], a1["id"]]

    page.locator(tid("search-input")).fill(b1["id"])
    page.locator(tid("search-button")).click()
    expect(page.locator(tid("transaction-row"))).to_have_count(1)
    assert row_ids(page) == [b1["id"]]

    page.locator(tid("search-input")).fill("cust-nobody")
    page.locator(tid("search-button")).click()
    expect(page.locator(tid("transaction-row"))).to_have_count(0)
    expect(page.locator(tid("transactions-empty"))).to_be_visible()
    page.locator(tid("clear-filters")).click()
    expect(page.locator(tid("transaction-row"))).to_have_count(4)
    page.screenshot(path=str(screenshot_dir / "paygate-dashboard-payments.png"), full_page=True)


def test_capture_then_refund_a_manual_payment_from_its_page(
    page: Page, context: BrowserContext, merchant: Merchant, screenshot_dir: Path,
) -> None:
    authorized = merchant.pay(5_000, capture_method="manual", customer_id="cust-manual")
    assert authorized["status"] == "authorized"
    login(page, merchant)
    page.locator("nav >> text=Payments").click()
    page.locator(f'{tid("transaction-row")}[data-payment-id="{authorized["id"]}"] a').click()
    expect(page.locator(tid("payment-status"))).to_have_text("authorized")
    expect(page.locator(tid("refund-button"))).to_have_count(0)

    # A capture of more than was authorized is refused with a message, and nothing changes.
    page.locator(tid("capture-amount-input")).fill("60.00")
    page.locator(tid("capture-button")).click()
    expect(page.locator(tid("action-error"))).to_contain_text("more than can be captured")
    assert merchant.get(f"/v1/payments/{authorized['id']}")["status"] == "authorized"

    page.locator(tid("capture-amount-input")).fill("40.00")
    page.locator(tid("capture-button")).click()
    expect(page.locator(tid("action-notice"))).to_have_text("Payment captured.")
    expect(page.locator(tid("payment-status"))).to_have_text("captured")
    captured = merchant.get(f"/v1/payments/{authorized['id']}")
    assert (captured["status"], captured["amount_captured"]) == ("captured", 4_000)

    page.locator(tid("refund-amount-input")).fill("15.50")
    page.locator(tid("refund-reason-input")).fill("customer asked")
    page.locator(tid("refund-button")).click()
    expect(page.locator(tid("action-notice"))).to_have_text("Refund succeeded.")
    expect(page.locator(tid("payment-status"))).to_have_text("partially refunded")
    expect(page.locator(tid("refund-row"))).to_have_count(1)
    page.screenshot(path=str(screenshot_dir / "paygate-dashboard-payment.png"), full_page=True)

    # The rest, submitted twice with the same form (a double click, a re-POST): refunded once.
    form = page.locator(tid("refund-form"))
    fields = {name: form.locator(f'input[name="{name}"]').input_value() for name in ("csrf_token", "idem")}
    action = f"{merchant.stack.api_url}/dashboard/payments/{authorized['id']}/refund"
    for _ in range(2):
        resp = context.request.post(action, form={**fields, "amount": "", "reason": ""}, max_redirects=0)
        assert resp.status == 303 and "done=refund_succeeded" in resp.headers["location"]
    refunded = merchant.get(f"/v1/payments/{authorized['id']}")
    assert (refunded["status"], refunded["amount_refunded"]) == ("refunded", 4_000)
    assert [r["amount"] for r in merchant.get("/v1/refunds", payment_id=authorized["id"])["data"]] == [2_450, 1_550]
    page.reload()
    expect(page.locator(tid("refund-row"))).to_have_count(2)
    expect(page.locator(tid("no-actions"))).to_be_visible()


def test_void_an_authorization(page: Page, merchant: Merchant) -> None:
    authorized = merchant.pay(2_500, capture_method="manual")
    login(page, merchant)
    page.goto(f"{merchant.stack.api_url}/dashboard/payments/{authorized['id']}")
    page.once("dialog", lambda dialog: dialog.accept())  # "Void this authorization?"
    page.locator(tid("void-button")).click()
    expect(page.locator(tid("payment-status"))).to_have_text("voided")
    assert merchant.get(f"/v1/payments/{authorized['id']}")["status"] == "voided"


def test_forms_without_the_csrf_token_are_refused(page: Page, context: BrowserContext, merchant: Merchant) -> None:
    authorized = merchant.pay(2_500, capture_method="manual")
    other = new_merchant(merchant.stack.database_url)
    login(page, merchant)
    expect(page.locator(tid("stats-container"))).to_be_visible()
    action = f"{merchant.stack.api_url}/dashboard/payments/{authorized['id']}/capture"
    forms: tuple[dict[str, str | float | bool], ...] = ({}, {"csrf_token": "forged"})  # Playwright's form type
    for form in forms:
        resp = context.request.post(action, form=form, max_redirects=0)
        assert resp.status == 403
    # the right token from another site (an attacker's page posting the form) is refused as well
    page.goto(f"{merchant.stack.api_url}/dashboard/payments/{authorized['id']}")
    token = page.locator(f'{tid("capture-form")} input[name="csrf_token"]').input_value()
    resp = context.request.post(action, form={"csrf_token": token}, headers={"Origin": "http://evil.test"},
                                max_redirects=0)
    assert resp.status == 403
    assert merchant.get(f"/v1/payments/{authorized['id']}")["status"] == "authorized"
    # and a merchant's session never reaches another merchant's payment
    context.clear_cookies()
    login(page, merchant, email=other["email"], password=other["password"])
    expect(page.locator(tid("stats-container"))).to_be_visible()
    response = page.goto(f"{merchant.stack.api_url}/dashboard/payments/{authorized['id']}")
    assert response is not None and response.status == 404


def test_a_webhook_endpoint_receives_deliveries_that_can_be_retried(
    page: Page, merchant: Merchant, receiver: Receiver, screenshot_dir: Path,
) -> None:
    login(page, merchant)
    page.locator("nav >> text=Webhooks").click()
    expect(page.locator(tid("webhook-config"))).to_be_visible()
    expect(page.locator(tid("webhook-log-item"))).to_have_count(0)
    page.locator(tid("webhook-url-input")).fill("ftp://example.com/hooks")
    page.locator(tid("save-webhook-button")).click()
    expect(page.locator(tid("action-error"))).to_contain_text("http")

    receiver.status = 500  # the merchant's server is broken at first
    page.locator(tid("webhook-url-input")).fill(receiver.url)
    page.locator(tid("save-webhook-button")).click()
    secret = page.locator(tid("webhook-secret")).inner_text()
    assert secret.startswith("whsec_")
    expect(page.locator(tid("webhook-endpoint"))).to_have_count(1)
    endpoints = merchant.get("/v1/webhook_endpoints")["data"]
    assert [(e["url"], e["enabled_events"]) for e in endpoints] == [(receiver.url, ["*"])]

    payment = merchant.pay(1_234)
    # This stack makes one attempt per delivery (PAYGATE_WEBHOOK_RETRY_SCHEDULE=0): wait until it is made.
    assert wait_for(lambda: [d["status"] for d in merchant.get("/v1/webhook_deliveries")["data"]] == ["failed"], 15)
    [delivery] = merchant.get("/v1/webhook_deliveries")["data"]
    page.locator(tid("refresh-webhook-logs")).click()
    item = page.locator(f'{tid("webhook-log-item")}[data-webhook-id="{delivery["id"]}"]')
    expect(item).to_be_visible()
    expect(item.locator(tid("webhook-status"))).to_have_text("failed")
    expect(item.locator(tid("webhook-attempts"))).to_have_text("1")
    expect(item).to_contain_text("payment.captured")
    expect(item).to_contain_text("HTTP 500")

    receiver.status = 200  # fixed: the merchant retries by hand
    item.locator(tid("retry-webhook-button")).click()
    expect(page.locator(tid("action-notice"))).to_contain_text("Delivered")
    item = page.locator(f'{tid("webhook-log-item")}[data-webhook-id="{delivery["id"]}"]')
    expect(item.locator(tid("webhook-status"))).to_have_text("succeeded")
    expect(item.locator(tid("webhook-attempts"))).to_have_text("2")
    page.screenshot(path=str(screenshot_dir / "paygate-dashboard-webhooks.png"), full_page=True)

    assert len(receiver.requests) == 2
    headers, body = receiver.requests[-1]
    event = Webhook(secret).verify(body, headers)  # signed with the secret the page showed
    assert event["type"] == "payment.captured" and event["data"]["object"]["id"] == payment["id"]


def test_a_test_order_from_the_home_page_opens_its_checkout(
    page: Page, context: BrowserContext, merchant: Merchant,
) -> None:
    login(page, merchant)
    page.locator(tid("test-order-amount-input")).fill("12.34")
    page.locator(tid("test-order-currency")).select_option("EUR")
    with context.expect_page() as opened:
        page.locator(tid("create-test-order-button")).click()
    checkout = opened.value
    expect(checkout.locator(tid("order-amount"))).to_have_text("€12.34 EUR")
    [order] = merchant.get("/v1/orders")["data"]
    assert (order["amount"], order["currency"], order["status"]) == (1_234, "EUR", "created")
    assert checkout.url == order["checkout_url"]
