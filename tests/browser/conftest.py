"""Browser fixtures: Debian's Chromium driven by Playwright against a real stack (bank, API, worker).

One stack per test module (starting processes is the slow part); every test makes its own merchant, so
tests never see each other's payments. A fresh browser context per test: no cookie leaks between tests.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from psycopg import sql

from tests.browser.browser_support import Merchant, Receiver, new_merchant
from tests.e2e.procs import Stack, start_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Longer than the UPI delay plus the page's polling interval; short enough to fail fast.
TIMEOUT_MS = 15_000


def _with_dbname(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def browser_stack(pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Stack]:
    """Bank, API and worker over a fresh database for this module. Webhooks get one attempt (schedule "0")
    so that a failing endpoint shows a `failed` delivery at once; UPI outcomes arrive in 0.5-0.8 s."""
    name = f"paygate_t_{os.getpid()}_{secrets.token_hex(4)}"  # the shared conftest sweeps these if we die
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                     sql.Identifier(template_database)))
    stack = None
    try:
        stack = start_stack(_with_dbname(pg_server_url, name), tmp_path_factory.mktemp("browser-stack"),
                            env={"PAYGATE_WEBHOOK_RETRY_SCHEDULE": "0", "PAYGATE_BANK_UPI_DELAY_MS": "500-800"})
        yield stack
    finally:
        if stack is not None:
            print(stack.logs())  # shown by pytest only when a test failed
            stack.stop()
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `scripts/bootstrap --browser` (apt-get install chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def merchant(browser_stack: Stack) -> Iterator[Merchant]:
    m = new_merchant(browser_stack.database_url)
    made = Merchant(browser_stack, m["merchant_id"], m["email"], m["password"], m["secret_key"], m["publishable_key"])
    yield made
    made.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where the tests leave screenshots for people to look at (PAYGATE_SCREENSHOT_DIR, default /tmp)."""
    path = Path(os.environ.get("PAYGATE_SCREENSHOT_DIR", tempfile.gettempdir()))
    path.mkdir(parents=True, exist_ok=True)
    return path

