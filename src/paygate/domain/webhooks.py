"""The pure rules of webhook delivery: what an attempt is, where it leaves its delivery (the automatic
schedule), which secrets sign it, and what of a receiver's answer may be stored.

No I/O and no settings: the server's key is an argument, so a gateway built with its own Settings signs
with its own key.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from paygate.domain.retry import jittered

EVENT_TYPES = (
    "payment.requires_action", "payment.pending", "payment.authorized", "payment.captured", "payment.failed",
    "payment.voided",
    "payment.expired", "refund.succeeded", "refund.failed", "order.paid",
    "payment_method.attached", "payment_method.detached",
    "dispute.created", "dispute.under_review", "dispute.won", "dispute.lost", "settlement.reconciled",
)
# Sent only on request, to one endpoint (POST /v1/webhook_endpoints/{id}/test, API.md §11 v2): never fanned
# out, so it is not one of EVENT_TYPES and no endpoint can subscribe to it.
TEST_EVENT = "webhook.test"
# Every type an event may have (GET /v1/events?type= accepts each).
ALL_EVENT_TYPES = (*EVENT_TYPES, TEST_EVENT)
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
# An endpoint whose every attempt has failed for this long is disabled (API.md §8).
FAILING_DISABLE_AFTER = timedelta(days=5)
# After rotate_secret the previous secret keeps signing for this long, beside the new one.
PREVIOUS_SECRET_TTL = timedelta(hours=24)
# What of a receiver's answer (and of an error) is kept per attempt, for the merchant's delivery log.
BODY_LIMIT = 1024  # bytes of UTF-8
ERROR_LIMIT = 200  # characters
SECRET_PREFIX = "whsec_"
# The error of an attempt refused before connecting (API.md §19).
DESTINATION_NOT_ALLOWED = "destination_not_allowed"

Row = dict[str, Any]


def printable(text: str, limit: int) -> str:
    """`text` safe to store and show: no control characters (NUL included: PostgreSQL refuses it, and a
    receiver must not be able to make an attempt unrecordable), at most `limit` characters.

    Tab, line feed and carriage return stay (a receiver's error page is text); every other C0/C1
    control, DEL and a lone surrogate (not encodable as UTF-8) becomes U+FFFD, so the merchant sees that
    something was there.
    """
    return "".join("\ufffd" if _unprintable(c) else c for c in text[:limit])


def _unprintable(c: str) -> bool:
    code = ord(c)
    return (code < 0x20 and c not in "\t\n\r") or 0x7F <= code < 0xA0 or 0xD800 <= code <= 0xDFFF


def body_text(raw: bytes, limit: int = BODY_LIMIT) -> str:
    """At most `limit` bytes of a receiver's answer as printable text. Invalid UTF-8 becomes U+FFFD; a
    character the cut at `limit` split in two is dropped rather than shown as garbage."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(raw[:limit], final=len(raw) <= limit)
    text = printable(text, limit)
    while len(text.encode()) > limit:  # U+FFFD is 3 bytes: replacing 1-byte garbage may grow the text
        text = text[:-1]
    return text


@dataclass(frozen=True)
class Attempt:
    """What happened to one POST: the receiver's status (None if it never answered) and timings."""

    at: datetime
    response_status: int | None
    duration_ms: int
    error: str | None = None
    response_body: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300

    @property
    def gone(self) -> bool:
        return self.response_status == 410

    def as_json(self) -> dict[str, Any]:
        """The attempt as stored and shown in the delivery object (API.md §8, plus `response_body`).
        Texts are made printable here too: whatever built the Attempt, what is stored can be read back."""
        return {
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "response_status": self.response_status,
            "duration_ms": self.duration_ms,
            "error": None if self.error is None else printable(self.error, ERROR_LIMIT),
            "response_body": None if self.response_body is None else printable(self.response_body, BODY_LIMIT),
        }


@dataclass(frozen=True)
class Decision:
    """Where one recorded attempt leaves its delivery."""

    status: str
    next_attempt_at: datetime | None


def decide(attempt: Attempt, attempts_before: int, schedule: list[float], now: datetime) -> Decision:
    """The automatic schedule: success ends it; 410 or the last scheduled attempt fails it; otherwise the
    next delay of the schedule with ±20 % jitter, or the receiver's Retry-After if that is longer."""
    if attempt.ok:
        return Decision("succeeded", None)
    made = attempts_before + 1
    if attempt.gone or made >= len(schedule):
        return Decision("failed", None)
    delay = jittered(schedule[made])
    if attempt.retry_after_s is not None:
        delay = max(delay, attempt.retry_after_s)
    return Decision("pending", now + timedelta(seconds=delay))


def derive(seed: str, master_key: str) -> str:
    """An endpoint's secret, derived from its stored seed and the server's key (`PAYGATE_SECRET_KEY`).

    The database alone never yields a signing secret; the key lives only in the environment.
    """
    mac = hmac.new(master_key.encode(), b"webhook-secret\0" + seed.encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(mac).decode()


def signing_secrets(row: Row, now: datetime, master_key: str) -> list[str]:
    """The current secret, and the previous one while its 24 h after a rotation last."""
    seeds = [row["secret"]]
    expires = row.get("previous_secret_expires_at")
    if row.get("previous_secret") and expires is not None and expires > now:
        seeds.append(row["previous_secret"])
    return [derive(seed, master_key) for seed in seeds]


def legacy_signature(secret: str, body: bytes) -> str:
    """`X-Webhook-Signature` for endpoints created with `legacy_signature` (API.md §11 v2): the lowercase
    hex HMAC-SHA256 of the exact body, keyed with the secret string as shown (`whsec_` included) — the
    scheme seed 001's and seed 004's receivers verify. One value: the newest secret signs it."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
