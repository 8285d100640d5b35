"""The few card, VPA and id rules the simulator needs, its own copies.

The simulator stands for a separate bank, so it never imports the gateway's domain: a bank that shared
the gateway's idea of a valid card could never disagree with it, and tests against it would prove less.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_VPA = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,255}@[a-zA-Z][a-zA-Z0-9]{1,63}$")


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
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def normalize_year(exp_year: int) -> int:
    return exp_year + 2000 if exp_year < 100 else exp_year


def is_expired(exp_month: int, exp_year: int, now: datetime) -> bool:
    """Valid through the last day of the expiry month."""
    return (normalize_year(exp_year), exp_month) < (now.year, now.month)


def valid_vpa(vpa: str) -> bool:
    return bool(_VPA.match(vpa))


def new_id(prefix: str) -> str:
    """`prefix_` + a 10-character millisecond clock + 16 characters of 80 random bits (Crockford base32)."""

    def encode(value: int, length: int) -> str:
        out = []
        for _ in range(length):
            out.append(_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(out))

    return f"{prefix}_{encode(time.time_ns() // 1_000_000, 10)}{encode(int.from_bytes(os.urandom(10), 'big'), 16)}"
