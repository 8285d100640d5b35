"""The dashboard's Acquirers page and routing editor (API.md §11, §14), as a merchant uses them, against a
stack configured with two acquirers. Neither page calls a bank, so both names point at the stack's one
simulator URL; the health shown is what the authorize flow records (store.acquirer_health)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from psycopg.rows import dict_row

from paygate.domain.health import Policy
from paygate.store import acquirer_health
from tests.browser.browser_support import Merchant
from tests.browser.test_browser_dashboard import login, tid
from tests.conftest import MakeDatabase
from tests.e2e.procs import Stack, start_stack


@pytest.fixture(scope="module")
def browser_stack(make_module_database: MakeDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's stack: two acquirers (overrides tests/browser/conftest.py's), no worker needed."""
    stack = start_stack(make_module_database(), tmp_path_factory.mktemp("routing-stack"), worker=False,
                        env={"PAYGATE_ACQUIRERS": "alpha=http://127.0.0.1:8787,beta=http://127.0.0.1:8787"})
    try:
        yield stack
    finally:
        print(stack.logs())
        stack.stop()


async def _record(database_url: str, acquirer: str, results: list[str]) -> None:
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn, conn.transaction():
        for i, result in enumerate(results):
            await acquirer_health.record_attempt(
                conn, payment_id=f"pay_{acquirer}_{i}", merchant_id="mer_x", acquirer=acquirer, result=result,
                failure_code=None, at=now + timedelta(milliseconds=i),
                policy=Policy(trip_after=5, cooldown=timedelta(seconds=600)))


def test_the_acquirers_page_shows_health_and_approval_rate(page: Page, merchant: Merchant,
                                                             screenshot_dir: Path) -> None:
    url = merchant.stack.database_url
    with ThreadPoolExecutor(1) as pool:  # its own event loop: Playwright's sync API runs one in this thread
        pool.submit(asyncio.run, _record(url, "alpha", ["succeeded", "succeeded", "succeeded", "declined"])).result()
        pool.submit(asyncio.run, _record(url, "beta", ["succeeded"] + ["unavailable"] * 5)).result()
    login(page, merchant)
    page.locator("nav >> text=Acquirers").click()
    rows = page.locator(tid("acquirer-row"))
    expect(rows).to_have_count(2)
    alpha, beta = rows.nth(0), rows.nth(1)
    assert alpha.get_attribute("data-acquirer") == "alpha" and beta.get_attribute("data-acquirer") == "beta"
    expect(alpha.locator(tid("acquirer-status"))).to_have_text("up")
    expect(alpha.locator(tid("acquirer-approval-rate"))).to_have_text("75.0%")
    expect(alpha.locator(tid("acquirer-attempts"))).to_have_text("4")
    expect(alpha.locator(tid("acquirer-down-until"))).to_have_text("—")
    expect(beta.locator(tid("acquirer-status"))).to_have_text("down")
    expect(beta.locator(tid("acquirer-failures"))).to_have_text("5")
    expect(beta.locator(tid("acquirer-approval-rate"))).to_have_text("16.7%")
    expect(beta.locator(tid("acquirer-down-until"))).not_to_have_text("—")
    page.screenshot(path=str(screenshot_dir / "acquirers.png"), full_page=True)


def test_the_routing_editor_saves_valid_rules_and_refuses_invalid_ones(
    page: Page, context: BrowserContext, merchant: Merchant, screenshot_dir: Path,
) -> None:
    login(page, merchant)
    page.locator("nav >> text=Routing").click()
    expect(page.locator(tid("routing-updated-at"))).to_have_text("Not set: the default routing")
    expect(page.locator(tid("routing-default"))).to_contain_text("alpha")
    editor = page.locator(tid("routing-input"))
    assert json.loads(editor.input_value()) == {"default": ["alpha", "beta"], "rules": []}

    valid: dict[str, Any] = {"default": ["beta", "alpha"], "rules": [
        {"name": "rupees by UPI", "when": {"currency": ["inr"], "method": ["upi"]}, "acquirers": ["alpha"]},
        {"name": "large", "when": {"amount_gte": 100000}, "acquirers": ["alpha", "beta"], "order": "success_rate"}]}
    editor.fill(json.dumps(valid, indent=2))
    page.locator(tid("save-routing-button")).click()
    expect(page.locator(tid("action-notice"))).to_have_text("Routing saved: new payments follow it.")
    expect(page.locator(tid("routing-rule"))).to_have_count(2)
    expect(page.locator(tid("routing-rule")).nth(0)).to_contain_text("currency INR")
    saved = merchant.sk.get("/v1/routing").json()  # the API sees what the dashboard saved
    assert saved["default"] == ["beta", "alpha"]
    assert saved["rules"][0] == {"name": "rupees by UPI", "when": {"currency": ["INR"], "method": ["upi"]},
                                 "acquirers": ["alpha"], "order": "priority"}

    # invalid: an unknown acquirer in the second rule; refused with the API's message, nothing saved
    bad = {**valid, "rules": [valid["rules"][0], {"when": {"currency": ["usd"]}, "acquirers": ["gamma"]}]}
    text = json.dumps(bad, indent=2)
    editor = page.locator(tid("routing-input"))
    editor.fill(text)
    page.locator(tid("save-routing-button")).click()
    expect(page.locator(tid("routing-error"))).to_contain_text("Unknown acquirer 'gamma'")
    expect(page.locator(tid("routing-error-param"))).to_have_text("rules[1].acquirers[0]")
    assert page.locator(tid("routing-input")).input_value() == text  # kept for correction
    api_says = httpx.put(f"{merchant.stack.api_url}/v1/routing", json=bad, auth=(merchant.secret_key, ""),
                         timeout=30).json()["error"]
    assert page.locator(tid("routing-error")).inner_text().startswith(api_says["message"])  # one validator
    assert api_says["param"] == "rules[1].acquirers[0]"
    page.screenshot(path=str(screenshot_dir / "routing.png"), full_page=True)
    assert merchant.sk.get("/v1/routing").json() == saved

    page.locator(tid("routing-input")).fill("{not json")
    page.locator(tid("save-routing-button")).click()
    expect(page.locator(tid("routing-error"))).to_contain_text("not valid JSON")
    assert merchant.sk.get("/v1/routing").json() == saved

    # a form without the session's CSRF token is refused and changes nothing
    resp = context.request.post(f"{merchant.stack.api_url}/dashboard/routing",
                                form={"csrf_token": "forged", "routing": json.dumps({"default": ["alpha"]})})
    assert resp.status == 403
    assert merchant.sk.get("/v1/routing").json() == saved
