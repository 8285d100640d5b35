"""Standard Webhooks (https://www.standardwebhooks.com) primitives, shared by everything paygate signs or
verifies: the deliveries it sends merchants, and the bank's callbacks it receives (and the simulator sends).

sign() gives the `webhook-signature` value for one secret; verify() accepts a header that may carry
several space-separated signatures (secret rotation), compares in constant time, and checks the timestamp
tolerance.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

_PREFIX = "whsec_"


def secret_bytes(secret: str) -> bytes:
    """The HMAC key: the base64 part after `whsec_` (the prefix is optional, padding may be missing)."""
    raw = secret.removeprefix(_PREFIX)
    key = base64.b64decode(raw + "=" * (-len(raw) % 4))
    if not key:
        raise ValueError("webhook secret may not be empty")
    return key


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes | str) -> bytes:
    payload = body.encode() if isinstance(body, str) else body
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + payload, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """`v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`."""
    return "v1," + base64.b64encode(_mac(secret_bytes(secret), msg_id, timestamp, body)).decode()


def verify(
    secrets: str | list[str],
    msg_id: str,
    timestamp: str | int,
    body: bytes | str,
    signature_header: str,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """True when any v1 signature in the header matches any of the secrets, within the tolerance."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    candidates: list[bytes] = []
    for part in signature_header.split():
        version, _, sig = part.partition(",")
        if version != "v1" or not sig:
            continue
        try:
            candidates.append(base64.b64decode(sig, validate=True))
        except ValueError:
            continue
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        expected = _mac(secret_bytes(secret), msg_id, ts, body)
        if any(hmac.compare_digest(expected, c) for c in candidates):
            return True
    return False
