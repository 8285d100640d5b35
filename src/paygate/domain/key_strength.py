"""How much secret material a configured key carries, and why a key is not good enough for production.

A key is text, but people generate it as an encoding of random bytes (`openssl rand -hex 32`,
`secrets.token_urlsafe(32)`, a `whsec_` Standard Webhooks secret). Its strength is the number of bytes
that encoding carries, not the number of characters: 32 hex characters are 16 bytes. So a value is
read as the densest encoding it parses as, in this order (docs/decisions/0009):

1. `whsec_` + base64: the base64 part, decoded;
2. hex (an even number of 0-9a-f, either case): decoded;
3. base64, standard or URL-safe alphabet, padding optional: decoded;
4. anything else: its UTF-8 bytes (a long passphrase).

It must carry at least `MIN_BYTES` bytes with at least `MIN_DISTINCT` different byte values (32 random
bytes practically always have ~30; `aaaa…` or `abab…` are not random, however long).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from dataclasses import dataclass

MIN_BYTES = 32
MIN_DISTINCT = 8
WHSEC = "whsec_"

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


@dataclass(frozen=True)
class Reading:
    material: bytes
    encoding: str  # "whsec", "hex", "base64" or "utf-8"


def _b64(text: str) -> bytes | None:
    """Strictly decoded base64 (either alphabet, padding optional), or None when it is not base64."""
    bare = text.rstrip("=")
    if not bare or len(bare) % 4 == 1:
        return None
    padded = bare + "=" * (-len(bare) % 4)
    try:
        if _B64.fullmatch(text):
            return base64.b64decode(padded, validate=True)
        if _B64URL.fullmatch(text):
            return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return None
    return None


def read(value: str) -> Reading | None:
    """The bytes `value` carries, or None for a `whsec_` value whose rest is not base64."""
    if value.startswith(WHSEC):
        raw = _b64(value.removeprefix(WHSEC))
        return Reading(raw, "whsec") if raw is not None else None
    if _HEX.fullmatch(value):
        return Reading(bytes.fromhex(value), "hex")
    raw = _b64(value)
    if raw is not None:
        return Reading(raw, "base64")
    return Reading(value.encode(), "utf-8")


def weakness(value: str | None, shipped: Collection[str], *, standard_webhooks: bool = False) -> str | None:
    """Why `value` is not a production key (a phrase to follow the variable's name), or None if it is.

    `value` None or empty means unset. `standard_webhooks` keys must be `whsec_` + base64 (the prefix
    optional), since that is how they are used.
    """
    if not value:
        return "is not set"
    if value in shipped:
        return "is a value shipped in paygate's source"
    if standard_webhooks:
        raw = _b64(value.removeprefix(WHSEC))
        if raw is None:
            return "is not a Standard Webhooks secret (whsec_ followed by base64)"
        reading = Reading(raw, "whsec")
    else:
        found = read(value)
        if found is None:
            return "starts with whsec_ but the rest is not base64"
        reading = found
    if len(reading.material) < MIN_BYTES:
        return (f"carries {len(reading.material)} bytes (read as {reading.encoding}); "
                f"at least {MIN_BYTES} random bytes are needed")
    if len(set(reading.material)) < MIN_DISTINCT:
        return f"is not random (only {len(set(reading.material))} different byte values)"
    return None


def keys(value: str) -> list[str]:
    """A key list such as the vault's (`current,older,…`): the keys in order, blanks kept as ''."""
    return [part.strip() for part in value.split(",")]
