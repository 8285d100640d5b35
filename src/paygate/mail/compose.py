"""An outbox row → the email message: plain text and HTML (multipart/alternative), a Message-ID derived
from the row's id. The HTML part is autoescaped by Jinja2: merchant names, descriptions and addresses
are data, never markup."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from paygate.domain import emails
from paygate.domain.money import CURRENCY_EXPONENTS

_html = Environment(loader=PackageLoader("paygate.mail", "templates"), autoescape=True, undefined=StrictUndefined,
                    trim_blocks=True, lstrip_blocks=True)
# The plain-text part is not markup: escaping it would show "&amp;" to the reader.
_text = Environment(loader=PackageLoader("paygate.mail", "templates"), autoescape=False,  # noqa: S701
                    undefined=StrictUndefined,
                    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _when(value: str) -> str:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _amount(amount: int, currency: str) -> str:
    return f"{emails.major_units(amount, CURRENCY_EXPONENTS.get(currency, 2))} {currency}"


def _method(m: dict[str, str]) -> str:
    if m.get("type") == "card":
        return f"{m.get('brand', 'card').capitalize()} ending in {m.get('last4', '')}"
    return f"UPI {m.get('vpa', '')}"


def subject(kind: str, data: dict[str, Any]) -> str:
    merchant = data.get("merchant_name", "paygate")
    amount = _amount(data["amount"], data["currency"])
    if kind == "payment_receipt":
        text = f"Your receipt from {merchant}: {amount}"
    elif kind == "refund_receipt":
        text = f"Your refund from {merchant}: {amount}"
    else:
        text = f"{merchant} asks you to pay {amount}"
    return emails.header_text(text)


def build(row: dict[str, Any], sender: str) -> EmailMessage:
    """The message for outbox row `row` (id, kind, recipient, data) from `sender` (`PAYGATE_SMTP_FROM`)."""
    kind: str = row["kind"]
    if kind not in emails.KINDS:
        raise ValueError(f"unknown email kind {kind!r}")
    data: dict[str, Any] = row["data"]
    context = {**data, "amount_text": _amount(data["amount"], data["currency"]), "when": _when(data["at"]),
               "merchant_name": data.get("merchant_name", "paygate"),
               "method_text": _method(data["method"]) if "method" in data else None}
    msg = EmailMessage()
    msg["Subject"] = subject(kind, data)
    msg["From"] = sender
    msg["To"] = row["recipient"]
    msg["Message-ID"] = emails.message_id(row["id"], sender)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a receipt
    msg.set_content(_text.get_template(f"{kind}.txt").render(**context))
    msg.add_alternative(_html.get_template(f"{kind}.html").render(**context), subtype="html")
    return msg
