"""A payment's page shows where it went (API.md §14): its acquirer attempts, oldest first, and the bank's
own references — here for a payment refused by a killed alpha and authorized by beta."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.browser_support import Merchant
from tests.browser.test_browser_dashboard import login, tid
from tests.conftest import MakeDatabase
from tests.e2e.procs import Stack, start_stack


@pytest.fixture(scope="module")
def browser_stack(make_module_database: MakeDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two real simulators, alpha's killed: every payment is refused there and fails over to beta."""
    stack = start_stack(make_module_database(), tmp_path_factory.mktemp("failover-stack"), worker=False,
                        acquirers=("alpha", "beta"))
    stack.bank_proc("alpha").kill()
    try:
        yield stack
    finally:
        print(stack.logs())
        stack.stop()


def test_the_payment_page_shows_its_acquirer_attempts(page: Page, merchant: Merchant, screenshot_dir: Path) -> None:
    paid = merchant.pay(2_500)
    assert (paid["status"], paid["acquirer"]) == ("captured", "beta")
    login(page, merchant)
    page.goto(f"{merchant.stack.api_url}/dashboard/payments/{paid['id']}")
    expect(page.locator(tid("payment-acquirer"))).to_have_text("beta")
    rows = page.locator(tid("acquirer-attempt"))
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(tid("attempt-acquirer"))).to_have_text("alpha")
    expect(rows.nth(0).locator(tid("attempt-result"))).to_have_text("unavailable")
    expect(rows.nth(1).locator(tid("attempt-acquirer"))).to_have_text("beta")
    expect(rows.nth(1).locator(tid("attempt-result"))).to_have_text("succeeded")
    refs = paid["acquirer_references"]
    expect(page.locator(tid("acquirer-reference-authorization"))).to_have_text(refs["authorization"])
    expect(page.locator(tid("acquirer-reference-capture"))).to_have_text(refs["capture"])
    page.screenshot(path=str(screenshot_dir / "payment-acquirer-attempts.png"), full_page=True)
