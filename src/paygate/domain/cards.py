"""Card checks that need no bank: Luhn, brand, expiry, and the keyed fingerprint that replaces the number."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime

# ASCII digits only: `str.isdigit()` (and `\d`) also accept "٤" or "³", which passed Luhn, reached the bank
# and were stored as last4 (API.md §19). The contract allows spaces, and only spaces, as separators.
_NUMBER = re.compile(r"[0-9]{12,19}")


def digits_only(number: str) -> str:
    """The number without its spaces (the only separator the contract allows)."""
    return number.replace(" ", "")


def normalize_number(number: str) -> str | None:
    """The card number as its 12-19 ASCII digits when it is one (Luhn included), else None."""
    n = digits_only(number)
    return n if luhn_valid(n) else None


def luhn_valid(number: str) -> bool:
    n = digits_only(number)
    if _NUMBER.fullmatch(n) is None:
        return False
    total = 0
    for i, ch in enumerate(reversed(n)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _prefix4(n: str) -> int:
    head = n[:4]
    return int(head) if len(head) == 4 and head.isascii() and head.isdigit() else -1


def brand(number: str) -> str:
    n = digits_only(number)
    prefix = _prefix4(n)
    if n.startswith("4"):
        return "visa"
    if n[:2] in {"51", "52", "53", "54", "55"} or 2221 <= prefix <= 2720:
        return "mastercard"
    if n[:2] in {"34", "37"}:
        return "amex"
    if n.startswith("6011") or n.startswith("65"):
        return "discover"
    if n[:2] in {"60", "81", "82"} or n.startswith("508"):
        return "rupay"
    if 3528 <= prefix <= 3589:
        return "jcb"
    return "unknown"


def fingerprint(number: str, key: str) -> str:
    """HMAC of the number: stable per card, useless without the key."""
    mac = hmac.new(key.encode(), digits_only(number).encode(), hashlib.sha256).hexdigest()
    return mac[:16]


def normalize_year(exp_year: int) -> int:
    return exp_year + 2000 if exp_year < 100 else exp_year


def is_expired(exp_month: int, exp_year: int, now: datetime) -> bool:
    """A card is valid through the last day of its expiry month."""
    year = normalize_year(exp_year)
    return (year, exp_month) < (now.year, now.month)


def public_view(number: str, exp_month: int, exp_year: int, fingerprint_key: str) -> dict[str, object]:
    n = digits_only(number)
    return {
        "brand": brand(n),
        "last4": n[-4:],
        "exp_month": exp_month,
        "exp_year": normalize_year(exp_year),
        "fingerprint": fingerprint(n, fingerprint_key),
    }
