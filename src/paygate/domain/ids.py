"""Opaque, prefixed identifiers that sort by creation time (ULID layout: 48-bit ms clock + 80 random bits).

Every id gets 80 fresh random bits (API.md §19): an order id is the capability that opens its checkout
(ADR 0007), so the next id must not be guessable from the previous one. ULID's "monotonic" variant (the
previous random part plus one within a millisecond) is exactly that guess, so it is not used: ids from
different milliseconds sort by time, ids from one millisecond are still distinct and totally ordered, but
in random order among themselves. Nothing may rely on creation order finer than a millisecond.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
RANDOM_BITS = 80


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """`prefix_` + 26 characters: 10 for the millisecond clock, 16 for 80 bits from the OS's CSPRNG."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(RANDOM_BITS // 8), "big")
    return f"{prefix}_{_encode(ms, 10)}{_encode(rand, 16)}"

