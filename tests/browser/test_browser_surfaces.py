"""The merchant's surfaces of API.md §11 (v2), as a customer and a merchant use them: the checkout's
elements, retry within §19's limit and the standalone success page; the dashboard's credentials, payment
cells and CSV export; the webhooks page's test webhook and secret regeneration; the PaymentGateway drop-in.
Screenshots go to i16-*.png in PAYGATE_SCREENSHOT_DIR (default /tmp) for people to look at."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from playwright.sync_api import Dialog, Page, Request, expect
from standardwebhooks.webhooks import Webhook

from tests.browser.browser_support import Merchant, Receiver, Site
from tests.browser.test_browser_dashboard import login
from tests.polling import wait_for

DECLINED = {"number": "4000000000000002", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def tid(name: str) -> str:
    return f'[data-test-id="{name}"]'


def fill_card(page: Page, number: str, expiry: str = "12/30", cvv: str = "123") -> None:
    page.locator(tid("card-number-input")).fill(number)
    page.locator(tid("expiry-input")).fill(expiry)
    page.locator(tid("cvv-input")).fill(cvv)


def accept_dialogs(page: Page) -> None:
    def accept(dialog: Dialog) -> None:
        dialog.accept()

    page.on("dialog", accept)


# --- hosted checkout -------------------------------------------------------------------------------------

def test_the_checkout_shows_every_element_retries_a_decline_and_links_the_success_page(
    page: Page, merchant: Merchant, screenshot_dir: Path,
) -> None:
    order = merchant.order(amount=5_000, currency="USD", receipt="receipt-16")
    sent: list[tuple[str, dict[str, Any]]] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/pay"):
            sent.append((request.headers["idempotency-key"], orjson.loads(request.post_data or "{}")))

    page.on("request", on_request)
    page.goto(order["checkout_url"])
    expect(page.locator(tid("order-summary"))).to_contain_text("$50.00 USD")
    expect(page.locator(tid("order-id"))).to_have_text(order["id"])
    for name in ("payment-methods", "method-card", "method-upi", "card-form", "cardholder-name-input",
                 "card-number-input", "expiry-input", "cvv-input", "pay-button"):
        expect(page.locator(tid(name))).to_be_visible()
    expect(page.locator(tid("upi-form"))).to_be_hidden()
    page.locator(tid("method-upi")).click()
    expect(page.locator(tid("upi-form"))).to_be_visible()
    expect(page.locator(tid("vpa-input"))).to_be_visible()
    expect(page.locator(tid("card-form"))).to_be_hidden()
    page.locator(tid("method-card")).click()
    page.locator(tid("cardholder-name-input")).fill("  Asha   Rao ")
    fill_card(page, "4111 1111 1111 1111")
    page.screenshot(path=str(screenshot_dir / "i16-checkout.png"))

    fill_card(page, "4000 0000 0000 0002")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("failure-state"))).to_be_visible()
    expect(page.locator(tid("failure-message"))).to_contain_text("declined")
    expect(page.locator(tid("retry-button"))).to_be_visible()
    expect(page.locator(tid("attempts-exhausted"))).to_be_hidden()
    page.screenshot(path=str(screenshot_dir / "i16-checkout-failure.png"))

    page.locator(tid("retry-button")).click()
    expect(page.locator(tid("pay-button"))).to_be_visible()
    fill_card(page, "4111111111111111")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("success-message"))).to_contain_text("$50.00 USD")
    payment_id = page.locator(tid("payment-id")).inner_text()
    assert payment_id.startswith("pay_")

    # two attempts, each with its own Idempotency-Key, each sending the cardholder's name as card.name
    assert len(sent) == 2 and sent[0][0] != sent[1][0]
    assert [body["payment_method"]["card"]["name"] for _, body in sent] == ["Asha Rao", "Asha Rao"]
    payments = merchant.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert [p["status"] for p in payments] == ["captured", "failed"] and payments[0]["id"] == payment_id

    # the address now is the standalone success page's, so a reload shows it
    success_url = f"{merchant.stack.api_url}/checkout/{order['id']}/success?payment_id={payment_id}"
    assert page.url == success_url
    page.reload()
    expect(page.locator(tid("success-state"))).to_be_visible()
    expect(page.locator(tid("payment-id"))).to_have_text(payment_id)
    expect(page.locator(tid("order-id"))).to_have_text(order["id"])
    expect(page.locator(tid("pay-button"))).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / "i16-checkout-success.png"))

    # the success page answers 404 for a payment that did not pay this order
    declined_id = payments[1]["id"]
    other = merchant.order(amount=100, currency="USD")
    wrong = ((declined_id, order["id"]), (payment_id, other["id"]), ("pay_nope", order["id"]), ("", order["id"]))
    for pid, oid in wrong:
        response = page.goto(f"{merchant.stack.api_url}/checkout/{oid}/success?payment_id={pid}")
        assert response is not None and response.status == 404, (pid, oid)
        expect(page.locator(tid("success-state"))).to_have_count(0)
        expect(page.locator(tid("checkout-error"))).to_contain_text("Payment not found")


def test_an_order_out_of_attempts_says_so_instead_of_offering_a_retry(
    page: Page, merchant: Merchant, screenshot_dir: Path,
) -> None:
    order = merchant.order(amount=2_000, currency="EUR")
    for _ in range(9):  # PAYGATE_ORDER_MAX_FAILED_PAYMENTS is 10: the page makes the last allowed one
        assert merchant.pay(card=DECLINED, order_id=order["id"], amount=2_000, currency="EUR")["status"] == "failed"
    page.goto(order["checkout_url"])
    fill_card(page, "4000000000000002")
    page.locator(tid("pay-button")).click()
    expect(page.locator(tid("failure-state"))).to_be_visible()
    expect(page.locator(tid("attempts-exhausted"))).to_be_visible()
    expect(page.locator(tid("attempts-exhausted"))).to_contain_text("No more attempts")
    expect(page.locator(tid("retry-button"))).to_be_hidden()
    page.screenshot(path=str(screenshot_dir / "i16-checkout-exhausted.png"))

    page.reload()  # rendered so by the server too: no form that the API would refuse
    expect(page.locator(tid("attempts-exhausted"))).to_be_visible()
    expect(page.locator(tid("pay-button"))).to_be_hidden()
    expect(page.locator(tid("retry-button"))).to_be_hidden()
    status = httpx.get(f"{merchant.stack.api_url}/checkout/{order['id']}/status").json()
    assert status["order"]["attempts_left"] == 0
    refused = merchant.sk.post("/v1/payments", json={"order_id": order["id"], "payment_method": {
        "type": "card", "card": DECLINED}})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_attempts"


def test_the_paymentgateway_drop_in_opens_the_modal_and_reports_success(page: Page, merchant: Merchant) -> None:
    api = merchant.stack.api_url
    served = httpx.get(f"{api}/checkout.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/javascript")
    assert served.content == httpx.get(f"{api}/sdk/paygate.js").content
    site = Site(f"""<!doctype html><html><head><title>Old shop</title><script src="{api}/checkout.js"></script></head>
<body><h1>Old shop</h1><script>
  window.events = [];
  window.buy = (orderId) => new PaymentGateway({{
    key: "{merchant.publishable_key}", orderId,
    onSuccess: (r) => window.events.push(["success", r]),
    onFailure: (r) => window.events.push(["failure", r.error.code]),
    onClose: () => window.events.push(["close"]),
  }}).open();
</script></body></html>""")
    try:
        page.goto(f"{site.origin}/cart")
        page.wait_for_function("typeof window.PaymentGateway === 'function' && typeof window.Paygate === 'function'")
        order = merchant.order(amount=3_000, currency="GBP")
        page.evaluate("(id) => window.buy(id)", order["id"])
        expect(page.locator(tid("payment-modal"))).to_be_visible()
        checkout = page.frame_locator(tid("payment-iframe"))
        expect(checkout.locator(tid("order-amount"))).to_have_text("£30.00 GBP")
        checkout.locator(tid("card-number-input")).fill("4000000000000002")
        checkout.locator(tid("expiry-input")).fill("12/30")
        checkout.locator(tid("cvv-input")).fill("123")
        checkout.locator(tid("pay-button")).click()
        expect(checkout.locator(tid("failure-state"))).to_be_visible()
        page.wait_for_function("window.events.length === 1")
        expect(page.locator(tid("payment-modal"))).to_be_visible()  # a failure leaves it open for another try

        checkout.locator(tid("retry-button")).click()
        checkout.locator(tid("card-number-input")).fill("4111111111111111")
        checkout.locator(tid("expiry-input")).fill("12/30")
        checkout.locator(tid("cvv-input")).fill("123")
        checkout.locator(tid("pay-button")).click()
        expect(checkout.locator(tid("success-state"))).to_be_visible()
        page.wait_for_function("window.events.length === 2")
        got: list[Any] = page.evaluate("window.events")
        payment_id = checkout.locator(tid("payment-id")).inner_text()
        assert got[0] == ["failure", "card_declined"]
        assert got[1][0] == "success" and got[1][1]["paymentId"] == payment_id
        assert merchant.get(f"/v1/payments/{payment_id}")["status"] == "captured"
        page.locator(tid("close-modal-button")).click()
        expect(page.locator(tid("payment-modal"))).to_have_count(0)
        assert page.evaluate("window.events")[2] == ["close"]
    finally:
        site.close()


# --- dashboard home ---------------------------------------------------------------------------------------

def _forget_displays(database_url: str, merchant_id: str) -> None:
    """What a merchant created before migration 0006 looks like: keys with nothing to display."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET display = NULL WHERE merchant_id = %s", (merchant_id,))


def test_home_shows_the_publishable_key_in_full_and_the_secret_key_masked(
    page: Page, merchant: Merchant, screenshot_dir: Path,
) -> None:
    login(page, merchant)
    card = page.locator(tid("api-credentials"))
    expect(card.locator(tid("api-key"))).to_have_text(merchant.publishable_key)
    secret = card.locator(tid("api-secret"))
    expect(secret).to_contain_text(merchant.secret_key[-4:])
    shown = secret.inner_text()
    assert shown.endswith(merchant.secret_key[-4:]) and merchant.secret_key[8:-4] not in shown
    assert merchant.secret_key not in page.content()
    page.screenshot(path=str(screenshot_dir / "i16-dashboard-home.png"), full_page=True)
    with psycopg.connect(merchant.stack.database_url) as conn:  # nothing but the last 4 is kept of the secret
        rows = conn.execute("SELECT kind, display FROM api_keys WHERE merchant_id = %s",
                            (merchant.merchant_id,)).fetchall()
    assert sorted(rows) == [("publishable", merchant.publishable_key), ("secret", merchant.secret_key[-4:])]

    _forget_displays(merchant.stack.database_url, merchant.merchant_id)
    page.reload()
    expect(card.locator(tid("api-key"))).to_have_count(0)
    expect(card.locator(tid("api-key-unavailable"))).to_contain_text("roll keys to display")
    expect(card.locator(tid("api-secret-unavailable"))).to_contain_text("roll keys to display")

    accept_dialogs(page)
    page.locator(tid("roll-keys-button")).click()
    new_pk = page.locator(tid("new-publishable-key")).inner_text()
    new_sk = page.locator(tid("new-secret-key")).inner_text()
    expect(card.locator(tid("api-key"))).to_have_text(new_pk)
    expect(card.locator(tid("api-secret"))).to_contain_text(new_sk[-4:])
    page.goto(f"{merchant.stack.api_url}/dashboard")  # later, without the one-time box: the secret key masked
    expect(card.locator(tid("api-key"))).to_have_text(new_pk)
    assert card.locator(tid("api-secret")).inner_text().endswith(new_sk[-4:]) and new_sk not in page.content()


# --- payments list and CSV --------------------------------------------------------------------------------

def test_payment_rows_have_their_cells_and_the_csv_export_follows_the_filter(
    page: Page, merchant: Merchant, screenshot_dir: Path,
) -> None:
    order = merchant.order(amount=5_000, currency="USD")
    paid = merchant.pay(5_000, "USD", order_id=order["id"], description="=HYPERLINK(\"http://evil\")")
    yen = merchant.pay(5_000, "JPY", description="+1 shirt")
    declined = merchant.pay(2_000, "USD", card=DECLINED)
    login(page, merchant)
    page.locator("nav >> text=Payments").click()
    row = page.locator(f'{tid("transaction-row")}[data-payment-id="{paid["id"]}"]')
    expect(row.locator(tid("payment-id"))).to_have_text(paid["id"])
    expect(row.locator(tid("order-id"))).to_have_text(order["id"])
    expect(row.locator(tid("amount"))).to_have_text("$50.00 USD")
    expect(row.locator(tid("method"))).to_contain_text("1111")
    expect(row.locator(tid("status"))).to_have_text("captured")
    expect(row.locator(tid("created-at"))).to_contain_text("UTC")
    no_order = page.locator(f'{tid("transaction-row")}[data-payment-id="{yen["id"]}"]')
    expect(no_order.locator(tid("order-id"))).to_have_text("—")
    expect(no_order.locator(tid("amount"))).to_have_text("¥5,000 JPY")

    page.locator(tid("status-filter")).select_option("captured")
    page.locator(tid("search-button")).click()
    expect(page.locator(tid("transaction-row"))).to_have_count(2)
    page.screenshot(path=str(screenshot_dir / "i16-payments.png"), full_page=True)
    with page.expect_download() as info:
        page.locator(tid("export-csv-button")).click()
    download = info.value
    assert download.suggested_filename.startswith(f"payments-{merchant.merchant_id}-")
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.startswith("payment_id,order_id,amount,currency,status,")
    assert [r["payment_id"] for r in rows] == [yen["id"], paid["id"]]  # newest first; the decline filtered out
    assert declined["id"] not in text
    by_id = {r["payment_id"]: r for r in rows}
    assert (by_id[paid["id"]]["amount"], by_id[paid["id"]]["currency"]) == ("50.00", "USD")
    assert (by_id[yen["id"]]["amount"], by_id[yen["id"]]["currency"]) == ("5000", "JPY")
    assert by_id[paid["id"]]["order_id"] == order["id"] and by_id[paid["id"]]["card_last4"] == "1111"
    assert all(RFC3339.match(r["created_at"]) for r in rows)
    assert by_id[paid["id"]]["created_at"] == paid["created_at"]
    # no cell can start a formula in a spreadsheet
    assert by_id[paid["id"]]["description"] == "'=HYPERLINK(\"http://evil\")"
    assert by_id[yen["id"]]["description"] == "'+1 shirt"

    # the search box filters the export too; without a session there is no export
    page.locator(tid("search-input")).fill(order["id"])
    page.locator(tid("status-filter")).select_option("")
    page.locator(tid("search-button")).click()
    with page.expect_download() as info:
        page.locator(tid("export-csv-button")).click()
    only = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert [r["payment_id"] for r in only] == [paid["id"]]
    anonymous = httpx.get(f"{merchant.stack.api_url}/dashboard/payments.csv", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "text/csv" not in anonymous.headers.get("content-type", "")


# --- webhooks page ----------------------------------------------------------------------------------------

@pytest.fixture
def legacy_receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_the_webhooks_page_sends_a_test_and_regenerates_the_secret(
    page: Page, merchant: Merchant, receiver: Receiver, legacy_receiver: Receiver, screenshot_dir: Path,
) -> None:
    accept_dialogs(page)
    login(page, merchant)
    page.locator("nav >> text=Webhooks").click()
    for name in ("webhook-config", "webhook-config-form", "webhook-url-input", "save-webhook-button",
                 "webhook-logs-table"):
        expect(page.locator(tid(name))).to_be_visible()
    page.locator(tid("webhook-url-input")).fill(receiver.url)
    page.locator(tid("save-webhook-button")).click()
    first_secret = page.locator(tid("webhook-secret")).inner_text()
    assert first_secret.startswith("whsec_")
    [endpoint] = merchant.get("/v1/webhook_endpoints")["data"]
    row = page.locator(f'{tid("webhook-endpoint")}[data-endpoint-id="{endpoint["id"]}"]')

    row.locator(tid("test-webhook-button")).click()
    expect(page.locator(tid("action-notice"))).to_contain_text("Test webhook")
    expect(page.locator(tid("webhook-secret"))).to_have_count(0)  # shown once: not after the next action
    assert wait_for(lambda: len(receiver.requests) == 1, 15)
    headers, body = receiver.requests[0]
    event = Webhook(first_secret).verify(body, headers)
    assert event["type"] == "webhook.test" and event["data"]["object"]["id"] == endpoint["id"]
    assert "secret" not in event["data"]["object"]
    assert wait_for(lambda: merchant.get("/v1/webhook_deliveries")["data"][0]["status"] == "succeeded", 15)
    [delivery] = merchant.get("/v1/webhook_deliveries")["data"]
    page.locator(tid("refresh-webhook-logs")).click()
    item = page.locator(f'{tid("webhook-log-item")}[data-webhook-id="{delivery["id"]}"]')
    expect(item.locator(tid("webhook-event"))).to_have_text("webhook.test")
    expect(item.locator(tid("webhook-status"))).to_have_text("succeeded")
    expect(item.locator(tid("webhook-attempts"))).to_have_text("1")
    expect(item.locator(tid("webhook-response-code"))).to_contain_text("HTTP 200")
    expect(item.locator(tid("webhook-last-attempt"))).to_contain_text("UTC")
    expect(item.locator(tid("retry-webhook-button"))).to_be_visible()
    assert item.locator(tid("webhook-last-attempt")).get_attribute("data-at") == delivery["attempts"][0]["at"]

    row.locator(tid("regenerate-secret-button")).click()
    new_secret = page.locator(tid("webhook-secret")).inner_text()
    assert new_secret.startswith("whsec_") and new_secret != first_secret
    page.screenshot(path=str(screenshot_dir / "i16-webhooks.png"), full_page=True)
    page.goto(f"{merchant.stack.api_url}/dashboard/webhooks")  # the page again: the secret is not shown again
    expect(page.locator(tid("webhook-secret"))).to_have_count(0)
    assert new_secret not in page.content()

    row.locator(tid("test-webhook-button")).click()
    assert wait_for(lambda: len(receiver.requests) == 2, 15)
    headers, body = receiver.requests[1]
    assert Webhook(new_secret).verify(body, headers)["type"] == "webhook.test"  # the next delivery verifies
    assert Webhook(first_secret).verify(body, headers)  # and the old secret still does, for 24 h (§8)

    # an endpoint added with the legacy signature gets X-Webhook-Signature, verified with hmac
    page.locator(tid("webhook-url-input")).fill(legacy_receiver.url)
    page.locator(tid("legacy-signature-input")).check()
    page.locator(tid("save-webhook-button")).click()
    legacy_secret = page.locator(tid("webhook-secret")).inner_text()
    legacy = [e for e in merchant.get("/v1/webhook_endpoints")["data"] if e["url"] == legacy_receiver.url]
    assert [e["legacy_signature"] for e in legacy] == [True]
    legacy_row = page.locator(f'{tid("webhook-endpoint")}[data-endpoint-id="{legacy[0]["id"]}"]')
    legacy_row.locator(tid("test-webhook-button")).click()
    assert wait_for(lambda: len(legacy_receiver.requests) == 1, 15)
    headers, body = legacy_receiver.requests[0]
    expected = hmac.new(legacy_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-webhook-signature"], expected)
    assert len(receiver.requests) == 2  # the first endpoint got nothing of the second one's test
