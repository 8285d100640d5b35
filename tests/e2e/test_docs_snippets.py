"""The integration docs page (/dashboard/docs) end to end: each snippet is taken from the page as a
merchant sees it and RUN — the curl and Python ones against the live API, the webhook one as the
receiver of a real signed delivery from the worker — with only its placeholders filled in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import MakeStack, Stack, free_port, wait_for
from tests.e2e.test_webhooks_receiver import CARD, Client

SECRET_PLACEHOLDER = "sk_test_…"
WEBHOOK_PLACEHOLDER = "whsec_…"


class _TextById(HTMLParser):
    """The text content of every element carrying a data-test-id, as a browser's textContent gives it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, test id) of the elements we are inside

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("input", "meta", "link", "br", "img"):
            return
        test_id = dict(attrs).get("data-test-id")
        self._open.append((tag, test_id))
        if test_id is not None:
            self.texts.setdefault(test_id, "")

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, test_id in self._open:
            if test_id is not None:
                self.texts[test_id] += data


def page_texts(html: str) -> dict[str, str]:
    parser = _TextById()
    parser.feed(html)
    return parser.texts


def dashboard(stack: Stack, merchant: dict[str, str]) -> httpx.Client:
    """A logged-in dashboard session, as a browser would get one (login form with its CSRF cookie)."""
    http = httpx.Client(base_url=stack.api_url, timeout=30)
    try:
        form = http.get("/dashboard/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        done = http.post("/dashboard/login", data={"csrf_token": token.group(1), "email": merchant["email"],
                                                   "password": merchant["password"]})
        assert done.status_code == 303 and done.headers["location"] == "/dashboard", done.text
    except BaseException:
        http.close()
        raise
    return http


@pytest.fixture
def docs_stack(make_stack: MakeStack) -> Stack:
    return make_stack(PAYGATE_WEBHOOK_ALLOW_PRIVATE="true", PAYGATE_WEBHOOK_RETRY_SCHEDULE="0,1,1,1",
                      PAYGATE_WORKER_POLL_S="0.2")


@pytest.fixture
def merchant(docs_stack: Stack) -> dict[str, str]:
    return docs_stack.merchant()


@pytest.fixture
def snippets(docs_stack: Stack, merchant: dict[str, str]) -> dict[str, str]:
    http = dashboard(docs_stack, merchant)
    try:
        resp = http.get("/dashboard/docs")
    finally:
        http.close()
    assert resp.status_code == 200
    texts = page_texts(resp.text)
    for test_id in ("api-docs", "section-create-order", "section-sdk-integration", "section-webhook-verification",
                    "code-snippet-create-order", "code-snippet-sdk", "code-snippet-webhook"):
        assert texts.get(test_id, "").strip(), test_id
    return texts


def test_the_page_needs_a_login_and_is_filled_with_this_server_and_the_publishable_key(
    docs_stack: Stack, merchant: dict[str, str], snippets: dict[str, str],
) -> None:
    anonymous = httpx.get(f"{docs_stack.api_url}/dashboard/docs", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/dashboard/login"
    create = snippets["code-snippet-create-order"]
    assert f"{docs_stack.api_url}/v1/orders" in create
    assert snippets["code-snippet-create-order-curl"] in create
    assert snippets["code-snippet-create-order-python"] in create
    assert f'new Paygate({{ key: "{merchant["publishable_key"]}" }})' in snippets["code-snippet-sdk"]
    assert f'<script src="{docs_stack.api_url}/sdk/paygate.js"></script>' in snippets["code-snippet-sdk"]
    assert "from standardwebhooks import Webhook" in snippets["code-snippet-webhook"]
    # the secret key is never on the page (it cannot be: only its hash is stored); a placeholder stands in
    page = "".join(snippets.values())
    assert merchant["secret_key"] not in page
    assert SECRET_PLACEHOLDER in create and SECRET_PLACEHOLDER in snippets["section-create-order"]


def _orders(stack: Stack, merchant: dict[str, str]) -> list[dict[str, Any]]:
    c = Client(stack.api_url, merchant["secret_key"])
    try:
        data: list[dict[str, Any]] = c.ok("GET", "/v1/orders", limit=100)["data"]
        return data
    finally:
        c.close()


def test_the_curl_snippet_creates_an_order(docs_stack: Stack, merchant: dict[str, str],
                                           snippets: dict[str, str]) -> None:
    script = snippets["code-snippet-create-order-curl"]
    assert script.count(SECRET_PLACEHOLDER) == 1
    filled = script.replace(SECRET_PLACEHOLDER, merchant["secret_key"])
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", filled], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["object"] == "order" and printed["amount"] == 5000 and printed["currency"] == "USD"
    assert [o["id"] for o in _orders(docs_stack, merchant)] == [printed["id"]]


def test_the_python_snippet_creates_an_order(docs_stack: Stack, merchant: dict[str, str],
                                             snippets: dict[str, str]) -> None:
    script = snippets["code-snippet-create-order-python"]
    assert script.count(SECRET_PLACEHOLDER) == 1
    done = subprocess.run([sys.executable, "-c", script.replace(SECRET_PLACEHOLDER, merchant["secret_key"])],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    order_id, checkout_url = done.stdout.split()
    [order] = _orders(docs_stack, merchant)
    assert order["id"] == order_id and order["checkout_url"] == checkout_url and order["receipt"] == "order-1001"
    # run again: its Idempotency-Key makes the retry return the same order, not a second one
    again = subprocess.run([sys.executable, "-c", script.replace(SECRET_PLACEHOLDER, merchant["secret_key"])],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and again.stdout.split()[0] == order_id
    assert len(_orders(docs_stack, merchant)) == 1


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="paygate-snippet-") as d:
        yield Path(d)


def test_the_webhook_snippet_verifies_a_real_delivery_and_refuses_a_forged_one(
    docs_stack: Stack, merchant: dict[str, str], snippets: dict[str, str], workdir: Path,
) -> None:
    client = Client(docs_stack.api_url, merchant["secret_key"])
    port = free_port()
    endpoint = client.endpoint(f"http://127.0.0.1:{port}/", ["payment.captured"])
    script = snippets["code-snippet-webhook"]
    assert script.count(WEBHOOK_PLACEHOLDER) == 1 and script.count("PORT = 8000") == 1
    path = workdir / "receiver.py"
    path.write_text(script.replace(WEBHOOK_PLACEHOLDER, endpoint["secret"]).replace("PORT = 8000", f"PORT = {port}"))
    out = (workdir / "out.log").open("w+")
    receiver = subprocess.Popen([sys.executable, str(path)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        def up() -> bool:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)  # any answer: it listens
            except httpx.TransportError:
                return False
            return True

        assert wait_for(up, 20), (workdir / "out.log").read_text()
        forged = httpx.post(f"http://127.0.0.1:{port}/", content=b'{"type": "payment.captured"}', headers={
            "webhook-id": "evt_forged", "webhook-timestamp": "1700000000", "webhook-signature": "v1,AAAA"})
        assert forged.status_code == 400
        payment = client.pay(CARD)
        assert payment["status"] == "captured"
        delivery = client.delivery_when(lambda d: d["status"] == "succeeded", endpoint_id=endpoint["id"])
        assert [a["response_status"] for a in delivery["attempts"]] == [200]  # verified at the first attempt
        assert wait_for(lambda: "verified" in (workdir / "out.log").read_text(), 10)
        event_id = delivery["event_id"]
        assert f"verified payment.captured {event_id}" in (workdir / "out.log").read_text()
    finally:
        receiver.terminate()
        receiver.wait(10)
        out.close()
        client.close()
