"""What makes two requests "the same" for an idempotency key: method, path and the parsed JSON body."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

MAX_KEY_LENGTH = 255


def valid_key(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY_LENGTH and all(32 <= ord(c) < 127 for c in key)


def fingerprint(method: str, path: str, body: Any, secret: str) -> bytes:
    """Compared as parsed JSON: key order and whitespace do not matter. Keyed (HMAC), because a body may
    hold a card number and CVC: an unkeyed hash of them could be brute-forced from what else is stored."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hmac.new(secret.encode(), method.upper().encode() + b" " + path.encode() + b"\n" + canonical,
                    hashlib.sha256).digest()
