"""The integration docs' snippets (web.docs_page.snippets): filled with the server and publishable key,
never a secret; the e2e and browser tests run them."""

from __future__ import annotations

from paygate.web.docs_page import (
    ORDER_ID_PLACEHOLDER,
    PUBLISHABLE_KEY_PLACEHOLDER,
    SECRET_KEY_PLACEHOLDER,
    WEBHOOK_SECRET_PLACEHOLDER,
    snippets,
)


def test_snippets_use_the_public_url_and_the_publishable_key() -> None:
    s = snippets("https://pay.example.com/", "pk_test_abc123")
    assert "curl -sS https://pay.example.com/v1/orders \\" in s.create_order_curl  # no double slash
    assert '"https://pay.example.com/v1/orders"' in s.create_order_python
    assert '<script src="https://pay.example.com/sdk/paygate.js"></script>' in s.sdk
    assert 'new Paygate({ key: "pk_test_abc123" })' in s.sdk and ORDER_ID_PLACEHOLDER in s.sdk
    assert WEBHOOK_SECRET_PLACEHOLDER in s.webhook and "Webhook(WEBHOOK_SECRET).verify(body" in s.webhook
    for text in (s.create_order_curl, s.create_order_python):
        assert text.count(SECRET_KEY_PLACEHOLDER) == 1  # one place to fill in; the tests substitute exactly it
    for text in (s.create_order_curl, s.create_order_python, s.sdk, s.webhook):
        assert "sk_test_" not in text.replace(SECRET_KEY_PLACEHOLDER, "")


def test_without_the_full_publishable_key_a_placeholder_stands_in() -> None:
    assert f'key: "{PUBLISHABLE_KEY_PLACEHOLDER}"' in snippets("http://127.0.0.1:8080", None).sdk


def test_the_python_snippets_compile() -> None:
    s = snippets("http://127.0.0.1:8080", "pk_test_x")
    compile(s.create_order_python, "create_order.py", "exec")
    compile(s.webhook, "webhook.py", "exec")
