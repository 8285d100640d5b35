"""Building paygate's emails (domain.emails, mail.compose): what a receipt says and never says."""

from __future__ import annotations

import random
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import default
from typing import Any

import pytest

from paygate.config import Settings
from paygate.domain import emails
from paygate.domain.retry import next_delay
from paygate.mail import compose
from paygate.mail.transport import parse_url
from paygate.services.emails import decide
from paygate.services.gateway import utcnow
from paygate.worker.emails import check_settings

PAN = "4111111111111111"
SENDER = "Acme receipts <receipts@shop.example>"


def card_payment(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": "pay_01jabc", "object": "payment", "amount": 12_345, "amount_captured": 12_345, "currency": "USD",
        "payment_method": {"type": "card", "card": {"brand": "visa", "last4": "1111", "exp_month": 12,
                                                      "exp_year": 2030, "fingerprint": "fp_secretish"}},
        "description": "2 x <b>tea</b> & cake",
    }
    p.update(over)
    return p


def row(kind: str, data: dict[str, Any], email_id: str = "em_01jxyz") -> dict[str, Any]:
    return {"id": email_id, "kind": kind, "recipient": "buyer@example.com",
            "data": {**data, "merchant_name": "Acme <Tea> & Co"}}


def parts(msg: EmailMessage) -> dict[str, str]:
    """The text of each part of the message as a mail client reads it (parsed back from its bytes)."""
    parsed = message_from_bytes(msg.as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    out: dict[str, str] = {}
    for part in parsed.walk():
        if not part.is_multipart():
            assert isinstance(part, EmailMessage)
            out[part.get_content_type()] = str(part.get_content())
    return out


def raw(msg: Message) -> str:
    return msg.as_bytes().decode("utf-8", errors="replace")


def test_payment_receipt_has_text_and_html_and_the_facts() -> None:
    data = emails.payment_receipt(card_payment(), "2026-11-21T10:30:01.123456Z")
    msg = compose.build(row("payment_receipt", data), SENDER)
    assert msg.get_content_type() == "multipart/alternative"
    got = parts(msg)
    assert set(got) == {"text/plain", "text/html"}
    for text in got.values():
        assert "123.45 USD" in text  # major units with the currency
        assert "1111" in text and "pay_01jabc" in text
        assert "2026-11-21 10:30:01 UTC" in text
    assert "Visa ending in 1111" in got["text/plain"]
    assert msg["To"] == "buyer@example.com" and msg["From"] == SENDER
    assert msg["Subject"] == "Your receipt from Acme <Tea> & Co: 123.45 USD"


def test_html_is_autoescaped_and_text_is_not() -> None:
    data = emails.payment_receipt(card_payment(), "2026-11-21T10:30:01.123456Z")
    got = parts(compose.build(row("payment_receipt", data), SENDER))
    assert "<b>tea</b>" not in got["text/html"] and "&lt;b&gt;tea&lt;/b&gt;" in got["text/html"]
    assert "Acme &lt;Tea&gt; &amp; Co" in got["text/html"]
    assert "2 x <b>tea</b> & cake" in got["text/plain"]  # plain text shows what the merchant wrote


def test_no_full_card_number_whatever_the_view_holds() -> None:
    # even a view that (wrongly) carried the number keeps only the last four in the receipt's facts
    leaky = card_payment(payment_method={"type": "card", "card": {"brand": "visa", "last4": PAN, "number": PAN}})
    data = emails.payment_receipt(leaky, "2026-11-21T10:30:01.123456Z")
    assert data["method"] == {"type": "card", "brand": "visa", "last4": "1111"}
    msg = compose.build(row("payment_receipt", data), SENDER)
    assert PAN not in raw(msg)
    assert "fp_secretish" not in raw(compose.build(row("payment_receipt", emails.payment_receipt(
        card_payment(), "2026-11-21T10:30:01.123456Z")), SENDER))


def test_upi_receipt_shows_the_vpa_and_refund_receipt_its_ids() -> None:
    upi = card_payment(payment_method={"type": "upi", "upi": {"vpa": "success@upi"}}, currency="INR",
                       amount_captured=49_900)
    got = parts(compose.build(row("payment_receipt", emails.payment_receipt(upi, "2026-11-21T10:30:01Z")), SENDER))
    assert "UPI success@upi" in got["text/plain"] and "499.00 INR" in got["text/plain"]
    refund = {"id": "ref_01jr", "amount": 2_000, "currency": "USD"}
    msg = compose.build(row("refund_receipt", emails.refund_receipt(card_payment(), refund, "2026-11-21T10:30:01Z")),
                        SENDER)
    got = parts(msg)
    assert "20.00 USD" in got["text/plain"] and "ref_01jr" in got["text/html"] and "pay_01jabc" in got["text/plain"]
    assert msg["Subject"].startswith("Your refund from")


def test_checkout_link_carries_the_url_in_both_parts() -> None:
    order = {"id": "ord_01j", "amount": 500, "currency": "JPY", "checkout_url": "http://pay.test/checkout/ord_01j",
             "receipt": None}
    got = parts(compose.build(row("checkout_link", emails.checkout_link(order, "2026-11-21T10:30:01Z")), SENDER))
    assert "http://pay.test/checkout/ord_01j" in got["text/plain"]
    assert 'href="http://pay.test/checkout/ord_01j"' in got["text/html"]
    assert "500 JPY" in got["text/plain"]  # a currency without minor units


def test_message_id_is_stable_per_row_and_differs_between_rows() -> None:
    data = emails.payment_receipt(card_payment(), "2026-11-21T10:30:01Z")
    first = compose.build(row("payment_receipt", data), SENDER)
    again = compose.build(row("payment_receipt", data), SENDER)
    other = compose.build(row("payment_receipt", data, email_id="em_01jother"), SENDER)
    assert first["Message-ID"] == again["Message-ID"] == "<em_01jxyz@shop.example>"
    assert other["Message-ID"] != first["Message-ID"]
    assert emails.message_id("em_1", "no-domain") == "<em_1@paygate.invalid>"


def test_header_injection_through_the_merchant_name_is_neutralised() -> None:
    data = {**emails.payment_receipt(card_payment(), "2026-11-21T10:30:01Z")}
    r = row("payment_receipt", data)
    r["data"]["merchant_name"] = "Evil\r\nBcc: victim@example.com"
    msg = compose.build(r, SENDER)
    parsed = message_from_bytes(msg.as_bytes(), policy=default)
    assert parsed["Bcc"] is None and "Bcc" not in parsed
    assert parsed["Subject"] == "Your receipt from Evil Bcc: victim@example.com: 123.45 USD"  # one line


@pytest.mark.parametrize("address", ["a@b.co", "first.last+tag@sub.example.com", "x_y@a-b.io",
                                     "Shop.Owner+pay@Example.COM"])
def test_valid_addresses(address: str) -> None:
    assert emails.valid_address(address)


@pytest.mark.parametrize("address", ["", "plain", "a@b", "a@@b.co", "a b@c.co", "a@b.co\r\nBcc: x@y.z", "a..b@c.co",
                                     "a@-b.co", "a@b..co", "x" * 65 + "@b.co", "a@" + "b" * 250 + ".co",
                                     "@example.com", "shop@", "a@b.co\n", "x" * 320 + "@e.com"])
def test_invalid_addresses(address: str) -> None:
    assert not emails.valid_address(address)


def test_retry_schedule_is_the_webhook_one() -> None:
    schedule = [0.0, 10.0, 100.0]
    rng = random.Random(7)
    delay = next_delay(1, schedule, rng)
    assert delay is not None and 8.0 <= delay <= 12.0
    assert next_delay(3, schedule) is None
    now = utcnow()
    assert decide(True, False, 0, schedule, now) == ("sent", None)
    status, at = decide(False, False, 0, schedule, now)
    assert status == "pending" and at is not None and 8 <= (at - now).total_seconds() <= 12
    assert decide(False, False, 2, schedule, now) == ("failed", None)  # the third attempt was the last
    assert decide(False, True, 0, schedule, now) == ("failed", None)  # a 5xx refusal is final


def test_smtp_urls() -> None:
    plain = parse_url("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("127.0.0.1", 2525, False, None)
    tls = parse_url("smtps://user%40x:p%3Ass@mail.example.com:465")
    assert (tls.tls, tls.username, tls.password, tls.port) == (True, "user@x", "p:ss", 465)
    assert "p:ss" not in repr(tls)
    assert parse_url("smtps://mail.example.com").port == 465
    for bad in ("http://x:25", "smtp://", "smtp://h:99999"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_a_bad_smtp_url_stops_the_worker_without_showing_it() -> None:
    with pytest.raises(SystemExit) as stopped:
        check_settings(Settings(smtp_url="http://user:hunter2secret@mail.example.com"))
    assert "PAYGATE_SMTP_URL" in str(stopped.value.code) and "hunter2secret" not in str(stopped.value.code)
    check_settings(Settings(smtp_url="smtps://user:hunter2secret@mail.example.com:465"))  # fine: no exit
    check_settings(Settings())  # unset: email off, no exit
