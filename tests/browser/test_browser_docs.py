"""GET /docs (API.md §10) renders the API's operations from files this process serves: with every request
to another host refused, and nothing refused by the page's own CSP."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.browser.browser_support import Merchant


def test_docs_render_without_any_other_host(page: Page, merchant: Merchant) -> None:
    api = urlsplit(merchant.stack.api_url)
    elsewhere: list[str] = []

    def only_paygate(route: Route) -> None:
        if urlsplit(route.request.url).netloc == api.netloc:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_paygate)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{merchant.stack.api_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("paygate")
    expect(page.locator(".opblock-summary-path", has_text="/v1/payments").first).to_be_visible()
    assert elsewhere == []
    assert problems == []
