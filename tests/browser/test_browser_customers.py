"""The dashboard's Customers page (API.md §11, §16) as a merchant uses it: search by email or name, a
customer's page with its saved cards (brand, last4, expiry — never the number), and detaching one (CSRF
checked; the number erased from the database; one `payment_method.detached` event)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from playwright.sync_api import Dialog, Page, expect

from tests.browser.browser_support import Merchant
from tests.browser.test_browser_dashboard import login, tid
from tests.e2e.customers_support import save_card, vault_columns

VISA, MASTERCARD, AMEX = "4242424242424242", "5555555555554444", "378282246310005"


def _customer(merchant: Merchant, **body: Any) -> dict[str, Any]:
    r = merchant.sk.post("/v1/customers", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _save(merchant: Merchant, customer_id: str, number: str, month: int, year: int) -> str:
    with ThreadPoolExecutor(1) as pool:  # its own event loop: Playwright's sync API runs one in this thread
        return pool.submit(save_card, merchant.stack.env, merchant.merchant_id, customer_id, number, month,
                           year).result()


def test_customers_search_detail_and_detach(page: Page, merchant: Merchant, screenshot_dir: Path) -> None:
    ada = _customer(merchant, email="ada@example.com", name="Ada Lovelace", description="Analytical engines",
                    metadata={"crm": "A-1"})
    grace = _customer(merchant, email="grace@example.com", name="Grace Hopper")
    _customer(merchant, email="alan@example.org", name="Alan Turing")
    visa = _save(merchant, ada["id"], VISA, 4, 2030)
    mc = _save(merchant, ada["id"], MASTERCARD, 11, 2031)
    _save(merchant, grace["id"], AMEX, 1, 2029)

    login(page, merchant)
    page.locator(tid("nav-customers")).click()
    expect(page).to_have_url(re.compile(r"/dashboard/customers$"))
    expect(page.locator(tid("customer-row"))).to_have_count(3)

    for query, expected in (("LOVELACE", [ada["id"]]), ("example.com", [grace["id"], ada["id"]]), ("nobody", [])):
        page.locator(tid("customer-search-input")).fill(query)
        page.locator(tid("customer-search-button")).click()
        expect(page.locator(tid("customer-row"))).to_have_count(len(expected))
        assert [r.get_attribute("data-customer-id") for r in page.locator(tid("customer-row")).all()] == expected
    expect(page.locator(tid("customers-empty"))).to_have_text("No customers match.")
    page.locator(tid("customer-search-input")).fill("example.com")
    page.locator(tid("customer-search-button")).click()
    expect(page.locator(tid("customer-row"))).to_have_count(2)
    page.screenshot(path=str(screenshot_dir / "customers-search.png"), full_page=True)
    page.locator(tid("customer-search-input")).fill(ada["id"])
    page.locator(tid("customer-search-button")).click()
    expect(page.locator(tid("customer-row"))).to_have_count(1)
    page.locator(tid("customer-link")).click()

    expect(page.locator(tid("customer-title"))).to_have_text("Ada Lovelace")
    expect(page.locator(tid("customer-email"))).to_have_text("ada@example.com")
    expect(page.locator(tid("customer-metadata"))).to_have_text("crm: A-1")
    rows = page.locator(tid("payment-method-row"))
    expect(rows).to_have_count(2)
    assert [r.get_attribute("data-payment-method-id") for r in rows.all()] == [mc, visa]  # newest first
    expect(rows.nth(0).locator(tid("payment-method-brand"))).to_have_text("Mastercard")
    expect(rows.nth(0).locator(tid("payment-method-last4"))).to_have_text("4444")
    expect(rows.nth(0).locator(tid("payment-method-expiry"))).to_have_text("11/2031")
    expect(rows.nth(1).locator(tid("payment-method-brand"))).to_have_text("Visa")
    expect(rows.nth(1).locator(tid("payment-method-expiry"))).to_have_text("04/2030")
    html = page.content()
    assert VISA not in html and MASTERCARD not in html and "4242 4242" not in html

    # a detach without the page's CSRF token is refused and changes nothing
    action = f"{merchant.stack.api_url}/dashboard/customers/{ada['id']}/payment_methods/{visa}/detach"
    forged = page.request.post(action, form={"idem": "forged-detach-0123456789"}, max_redirects=0)
    assert forged.status == 403
    assert vault_columns(merchant.stack.database_url, visa)["vault_ciphertext"] is not None

    page.screenshot(path=str(screenshot_dir / "customers.png"), full_page=True)
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    rows.nth(1).locator(tid("detach-payment-method-button")).click()
    expect(page.locator(tid("action-notice"))).to_contain_text("Payment method detached")
    assert asked and "erased" in asked[0]
    expect(page.locator(tid("payment-method-row"))).to_have_count(1)
    assert page.locator(tid("payment-method-row")).get_attribute("data-payment-method-id") == mc

    stored = vault_columns(merchant.stack.database_url, visa)
    assert stored["customer_id"] is None and stored["vault_ciphertext"] is None and stored["vault_key_id"] is None
    detached = merchant.sk.get("/v1/payment_methods/" + visa).json()
    assert detached["customer"] is None
    events = merchant.sk.get("/v1/events", params={"type": "payment_method.detached"}).json()["data"]
    assert [e["data"]["object"]["id"] for e in events] == [visa]
    page.reload()  # a browser re-POST or reload detaches nothing more
    expect(page.locator(tid("payment-method-row"))).to_have_count(1)
    page.screenshot(path=str(screenshot_dir / "customers-detached.png"), full_page=True)

    page.goto(f"{merchant.stack.api_url}/dashboard/customers/cus_unknown")
    expect(page.locator("h1")).to_have_text("Not found")
