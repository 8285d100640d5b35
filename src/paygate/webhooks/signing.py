"""Standard Webhooks signing (https://www.standardwebhooks.com) of the deliveries paygate sends.

Every valid secret of an endpoint signs each delivery, so that during a secret rotation a receiver that
still holds the previous secret, or already holds the new one, accepts the same request.
"""

from __future__ import annotations

import base64
import secrets

from paygate.domain.webhooks import derive
from paygate.webhooks.standard import sign

__all__ = ["derive", "headers", "new_secret", "new_seed", "sealed", "sign", "signature_header", "unseal"]

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: the format `standardwebhooks.Webhook` accepts as is."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_seed() -> str:
    """What the database keeps instead of an endpoint's secret (see `domain.webhooks.derive`)."""
    return secrets.token_urlsafe(SECRET_BYTES)


_SEALED = "whsec_seed:"


def sealed(seed: str) -> str:
    """A stand-in for a secret inside a stored response: names the seed, useless without the key."""
    return _SEALED + seed


def unseal(body: bytes, master_key: str) -> bytes:
    """A stored response with each sealed secret derived again: the bytes the client first received."""
    if _SEALED.encode() not in body:
        return body
    text = body.decode()
    out, rest = [], text
    while (i := rest.find(_SEALED)) >= 0:
        end = rest.index('"', i)
        out += [rest[:i], derive(rest[i + len(_SEALED):end], master_key)]
        rest = rest[end:]
    return ("".join(out) + rest).encode()


def signature_header(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,…` per valid secret, space-separated (newest first)."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def headers(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
    }
