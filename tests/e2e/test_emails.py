"""Receipts and checkout links by email, end to end: bank, API and worker as processes, a real SMTP
server (aiosmtpd) started by the test on a free port. The receipts follow real captures and refunds
against the simulated bank."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.e2e.procs import MakeStack, Stack, free_port, wait_for
from tests.e2e.smtp_catcher import Catcher
from tests.e2e.test_webhooks_receiver import CARD, Client

SENDER = "Tea Shop receipts <receipts@shop.test>"
BUYER = "buyer@example.com"
FAST = "0,1,1,1,1,1,1,1,1,1,1,1"  # many attempts about a second apart


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    c = Catcher().start()
    yield c
    c.stop()


def emails(stack: Stack, object_id: str) -> list[dict[str, Any]]:
    """The outbox rows of an object, read from the stack's database (the outbox has no API of its own)."""
    with psycopg.connect(stack.database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM emails WHERE object_id = %s ORDER BY id", (object_id,)).fetchall()


def one_email_when(stack: Stack, object_id: str, condition: Any, timeout: float = 30) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = [r for r in emails(stack, object_id) if condition(r)]
        return len(found) == 1

    assert wait_for(check, timeout, interval=0.1), emails(stack, object_id)
    return found[0]


def test_receipts_for_a_real_capture_and_refund_and_a_checkout_link(make_stack: MakeStack, catcher: Catcher) -> None:
    stack = make_stack(PAYGATE_SMTP_URL=catcher.url, PAYGATE_SMTP_FROM=SENDER, PAYGATE_WORKER_POLL_S="0.2")
    merchant = stack.merchant(name="Tea Shop")
    client = Client(stack.api_url, merchant["secret_key"])
    try:
        p = client.ok("POST", "/v1/payments", {"amount": 5_000, "currency": "USD", "receipt_email": BUYER,
                                                "payment_method": {"type": "card", "card": CARD}}, 201)
        assert p["status"] == "captured"
        [receipt] = catcher.wait(1)
        assert receipt.rcpt_tos == [BUYER] and receipt.mail_from == "receipts@shop.test"
        msg = receipt.message
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["Subject"] == "Your receipt from Tea Shop: 50.00 USD"
        text, page = receipt.part("text/plain"), receipt.part("text/html")
        for body in (text, page):
            assert "50.00 USD" in body and p["id"] in body and "1111" in body
        assert "Visa ending in 1111" in text
        assert str(CARD["number"]).encode() not in receipt.raw  # never the full card number, in any part or header
        row = one_email_when(stack, p["id"], lambda r: r["status"] == "sent")
        assert msg["Message-ID"] == f"<{row['id']}@shop.test>"  # the outbox row's id: repeats are recognisable

        refund = client.ok("POST", "/v1/refunds", {"payment_id": p["id"], "amount": 1_250}, 201)
        assert refund["status"] == "succeeded"
        refund_mail = catcher.wait(2)[1]
        assert refund_mail.message["Subject"] == "Your refund from Tea Shop: 12.50 USD"
        assert refund["id"] in refund_mail.part("text/plain") and p["id"] in refund_mail.part("text/html")

        order = client.ok("POST", "/v1/orders", {"amount": 49_900, "currency": "INR"}, 201)
        sent = client.ok("POST", f"/v1/orders/{order['id']}/send_link", {"email": "friend@example.com"}, 202)
        link_mail = catcher.wait(3)[2]
        assert link_mail.rcpt_tos == ["friend@example.com"]
        assert link_mail.message["Message-ID"] == f"<{sent['id']}@shop.test>"
        assert order["checkout_url"] in link_mail.part("text/plain")
        hrefs = re.findall(r'href="([^"]+)"', link_mail.part("text/html"))
        assert hrefs and set(hrefs) == {order["checkout_url"]}
        page_resp = httpx.get(hrefs[0], timeout=30)  # the link in the email opens the order's checkout
        assert page_resp.status_code == 200 and order["id"] in page_resp.text
        assert len(catcher.caught) == 3  # a payment without receipt_email or a plain order sent nothing more
    finally:
        client.close()


def test_smtp_server_down_then_up_is_retried_and_delivered_with_the_same_message_id(make_stack: MakeStack) -> None:
    port = free_port()  # nothing listens here yet: every attempt is refused
    stack = make_stack(PAYGATE_SMTP_URL=f"smtp://127.0.0.1:{port}", PAYGATE_SMTP_FROM=SENDER,
                       PAYGATE_WEBHOOK_RETRY_SCHEDULE=FAST, PAYGATE_WORKER_POLL_S="0.2")
    client = Client(stack.api_url, stack.merchant()["secret_key"])
    catcher = Catcher(port)
    try:
        p = client.ok("POST", "/v1/payments", {"amount": 2_000, "currency": "EUR", "receipt_email": BUYER,
                                                "payment_method": {"type": "card", "card": CARD}}, 201)
        failing = one_email_when(stack, p["id"], lambda r: r["attempt_count"] >= 2)
        assert failing["status"] == "pending" and failing["sent_at"] is None
        assert all(a["error"].startswith("connection_failed") for a in failing["attempts"])
        catcher.start()
        [got] = catcher.wait(1)
        row = one_email_when(stack, p["id"], lambda r: r["status"] == "sent")
        assert row["id"] == failing["id"] and row["attempt_count"] >= 3
        assert row["attempts"][-1]["error"] is None
        assert got.message["Message-ID"] == f"<{row['id']}@shop.test>"
        assert "20.00 EUR" in got.part("text/plain")
        assert len(catcher.caught) == 1
    finally:
        catcher.stop()
        client.close()
