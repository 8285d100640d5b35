"""Rolling API keys from the dashboard's credentials card (API.md §19), as a merchant does it: the new keys
are shown once, the old ones stop when chosen, and the form is CSRF-protected like every other."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.browser_support import Merchant


def tid(name: str) -> str:
    return f'[data-test-id="{name}"]'


def login(page: Page, merchant: Merchant) -> None:
    page.goto(f"{merchant.stack.api_url}/dashboard")
    page.locator(tid("email-input")).fill(merchant.email)
    page.locator(tid("password-input")).fill(merchant.password)
    page.locator(tid("login-button")).click()
    expect(page.locator(tid("api-credentials"))).to_be_visible()


def status(merchant: Merchant, key: str) -> int:
    """A secret-key request on a new connection."""
    return httpx.get(f"{merchant.stack.api_url}/v1/payments?limit=1", auth=(key, ""), timeout=30).status_code


def hint(key: str) -> str:
    return f"{key[:8]}…{key[-4:]}"


def test_rolling_keys_at_once_shows_the_new_keys_once_and_the_old_secret_key_is_refused(
        page: Page, merchant: Merchant, screenshot_dir: Path) -> None:
    login(page, merchant)
    assert status(merchant, merchant.secret_key) == 200
    card = page.locator(tid("api-credentials"))
    expect(card.locator(tid("secret-key-hint"))).to_have_text(hint(merchant.secret_key))
    expect(card.locator(tid("roll-keys-grace"))).to_have_value("3600")  # the default: an hour

    card.locator(tid("roll-keys-grace")).select_option("0")
    page.once("dialog", lambda dialog: dialog.accept())  # "Make new API keys? …"
    card.locator(tid("roll-keys-button")).click()

    shown = page.locator(tid("new-keys"))
    expect(shown).to_be_visible()
    new_sk = shown.locator(tid("new-secret-key")).inner_text()
    new_pk = shown.locator(tid("new-publishable-key")).inner_text()
    assert new_sk.startswith("sk_test_") and new_pk.startswith("pk_test_")
    assert new_sk != merchant.secret_key and new_pk != merchant.publishable_key
    expect(shown.locator(tid("old-keys-expire"))).to_have_text("The previous keys no longer work.")
    page.screenshot(path=str(screenshot_dir / "paygate-dashboard-rolled-keys.png"), full_page=True)
    assert status(merchant, merchant.secret_key) == 401  # at once
    assert status(merchant, new_sk) == 200
    expect(card.locator(tid("secret-key-hint"))).to_have_text(hint(new_sk))  # the old key is gone from the card
    expect(card.locator(tid("publishable-key-hint"))).to_have_text(hint(new_pk))

    page.goto(f"{merchant.stack.api_url}/dashboard")  # never shown again
    expect(page.locator(tid("api-credentials"))).to_be_visible()
    expect(page.locator(tid("new-keys"))).to_have_count(0)
    assert new_sk not in page.content()


def test_rolling_keys_with_a_grace_period_keeps_the_old_key_working_and_says_until_when(
        page: Page, merchant: Merchant) -> None:
    login(page, merchant)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(tid("roll-keys-button")).click()  # the default grace: an hour
    new_sk = page.locator(tid("new-secret-key")).inner_text()
    expect(page.locator(tid("old-keys-expire"))).to_contain_text("The previous keys stop working")
    assert status(merchant, merchant.secret_key) == 200
    assert status(merchant, new_sk) == 200
    hints = page.locator(f'{tid("api-credentials")} {tid("secret-key-hint")}')
    expect(hints).to_have_count(2)
    expect(hints.nth(0)).to_have_text(hint(new_sk))
    expect(hints.nth(1)).to_contain_text(hint(merchant.secret_key))
    expect(hints.nth(1).locator(tid("key-expires"))).to_contain_text("stops working")


def test_the_roll_keys_form_refuses_a_missing_or_forged_csrf_token_and_a_foreign_origin(
        page: Page, context: BrowserContext, merchant: Merchant) -> None:
    login(page, merchant)
    action = f"{merchant.stack.api_url}/dashboard/keys/roll"
    forms: list[dict[str, str | float | bool]] = [{"grace": "0"}, {"grace": "0", "csrf_token": "forged"}]
    for form in forms:
        resp = context.request.post(action, form=form, max_redirects=0)
        assert resp.status == 403
    token = page.locator(f'{tid("roll-keys-form")} input[name="csrf_token"]').input_value()
    resp = context.request.post(action, form={"grace": "0", "csrf_token": token},
                                headers={"Origin": "http://evil.test"}, max_redirects=0)
    assert resp.status == 403
    resp = context.request.post(action, form={"grace": "5", "csrf_token": token}, max_redirects=0)
    assert resp.status == 303 and resp.headers["location"] == "/dashboard?error=grace_invalid"  # not a choice
    assert status(merchant, merchant.secret_key) == 200  # nothing was rolled
    page.goto(f"{merchant.stack.api_url}/dashboard?error=grace_invalid")
    expect(page.locator(tid("action-error"))).to_have_text("Choose how long the current keys keep working.")
    expect(page.locator(f'{tid("api-credentials")} {tid("secret-key-hint")}')).to_have_count(1)
