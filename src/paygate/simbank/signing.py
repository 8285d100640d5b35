"""The simulated bank's callback signing: Standard Webhooks headers for one secret.

The primitives live in `paygate.webhooks.standard`, shared with the gateway; re-exported here for the
simulator's own modules.
"""

from __future__ import annotations

import time

from paygate.webhooks.standard import secret_bytes, sign, verify

__all__ = ["headers", "secret_bytes", "sign", "verify"]


def headers(secret: str, msg_id: str, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }
