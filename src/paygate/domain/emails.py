"""What paygate's emails say (API.md §16): the facts of a receipt or a checkout link, addresses and
Message-IDs. Pure: the outbox stores these facts, the worker renders and sends them.

A receipt never carries a card number: only the brand and last four digits of the payment's public
view (or the UPI address), which is all the payment row itself holds.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Any

KINDS = ("payment_receipt", "refund_receipt", "checkout_link")
# The longest address SMTP can carry (RFC 5321's 256-octet path, less its angle brackets).
MAX_CHARS = 254

# Deliberately plain: one @, no whitespace or control characters (so no header injection), a dotted
# domain. What the mailbox really accepts only the recipient's server can say. Matched with fullmatch:
# `$` would let a trailing newline through.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                      r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


def valid_address(value: str) -> bool:
    """The one address rule of paygate: customers' and receipts' emails and merchants' login emails."""
    return len(value) <= MAX_CHARS and _ADDRESS.fullmatch(value) is not None and ".." not in value.split("@")[0]


def message_id(email_id: str, sender: str) -> str:
    """`<em_…@domain>`: derived from the outbox row alone, so every attempt (and any repeat after a
    crash) carries the same Message-ID and a mailbox can recognise it."""
    _, addr = parseaddr(sender)
    local, at, domain = addr.rpartition("@")
    if not (local and at and domain):
        domain = "paygate.invalid"
    return f"<{email_id}@{domain}>"


def method_summary(pm: dict[str, Any]) -> dict[str, str]:
    """The payment method as a receipt shows it: card brand and last4, or the VPA. Nothing else is copied
    (not even the expiry or the fingerprint), whatever the view holds."""
    if pm.get("type") == "card":
        card = pm.get("card") or {}
        return {"type": "card", "brand": str(card.get("brand", "card")), "last4": str(card.get("last4", ""))[-4:]}
    return {"type": "upi", "vpa": str((pm.get("upi") or {}).get("vpa", ""))}


def payment_receipt(payment: dict[str, Any], at: str) -> dict[str, Any]:
    """A captured payment's receipt, from its public view."""
    return {"payment_id": payment["id"], "amount": payment["amount_captured"], "currency": payment["currency"],
            "method": method_summary(payment["payment_method"]), "description": payment.get("description"),
            "at": at}


def refund_receipt(payment: dict[str, Any], refund: dict[str, Any], at: str) -> dict[str, Any]:
    """A succeeded refund's receipt, from the public views of the refund and its payment."""
    return {"payment_id": payment["id"], "refund_id": refund["id"], "amount": refund["amount"],
            "currency": refund["currency"], "method": method_summary(payment["payment_method"]), "at": at}


def checkout_link(order: dict[str, Any], at: str) -> dict[str, Any]:
    return {"order_id": order["id"], "amount": order["amount"], "currency": order["currency"],
            "checkout_url": order["checkout_url"], "receipt": order.get("receipt"), "at": at}


def major_units(amount: int, exponent: int) -> str:
    """5000, 2 → "50.00"; 5000, 0 → "5,000". Integers only."""
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(int(amount)), 10**exponent)
    return f"{sign}{major:,}" + (f".{minor:0{exponent}d}" if exponent else "")


def header_text(value: str, limit: int = 200) -> str:
    """Text fit for a header: control characters (a CR/LF would split the header) become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()[:limit]
