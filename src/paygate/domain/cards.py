"""Card checks that need no bank: Luhn, brand, expiry, and the keyed fingerprint that replaces the number."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime


def digits_only(number: str) -> str:
    return number.replace(" ", "").replace("-", "")


def luhn_valid(number: str) -> bool:
    n = digits_only(number)
    if not n.isdigit() or not 12 <= len(n) <= 19:
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


def brand(number: str) -> str:
    n = digits_only(number)
    if n.startswith("4"):
        return "visa"
    if n[:2] in {"51", "52", "53", "54", "55"} or (len(n) >= 4 and 2221 <= int(n[:4]) <= 2720):
        return "mastercard"
    if n[:2] in {"34", "37"}:
        return "amex"
    if n.startswith("6011") or n.startswith("65"):
        return "discover"
    if n[:2] in {"60", "81", "82"} or n.startswith("508"):
        return "rupay"
    if len(n) >= 4 and 3528 <= int(n[:4]) <= 3589:
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
