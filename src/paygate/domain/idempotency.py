"""What makes two requests "the same" for an idempotency key: method, path and the parsed JSON body, with
every card in it reduced to its fingerprint."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from paygate.domain import cards

MAX_KEY_LENGTH = 255


def valid_key(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY_LENGTH and all(32 <= ord(c) < 127 for c in key)


def redact(body: Any, fingerprint_key: str) -> Any:
    """The body as the idempotency fingerprint sees it: every object under a `card` key (the
    `payment_method.card` of a payment, the `card` of a saved payment method) loses `number` and `cvc`,
    and gains the card's `fingerprint` in place of the number; everything else is kept as sent.

    No value computed from a CVC may be stored (PCI DSS 3.3.1.2, API.md §19), and the stored
    fingerprint is such a value if it covers the CVC: with the key and a card number the CVC falls to
    1,000 guesses. So two requests that differ only in their CVC are the *same* request here, and a
    retry under the same key with another CVC replays the first answer (an `incorrect_cvc` 402
    included) rather than being refused with `idempotency_key_reused`. Telling them apart would need
    exactly the stored CVC-derived value we must not keep; a retry with corrected card details is a new
    attempt, and a new attempt takes a new key. The number is kept only as the keyed card fingerprint,
    which is stored on the payment anyway, so a different card is still a different request."""
    if isinstance(body, dict):
        out: dict[str, Any] = {}
        for name, value in body.items():
            out[name] = _reduce_card(value, fingerprint_key) if name == "card" else redact(value, fingerprint_key)
        return out
    if isinstance(body, list):
        return [redact(item, fingerprint_key) for item in body]
    return body


def _reduce_card(card: Any, fingerprint_key: str) -> Any:
    if not isinstance(card, dict):
        return redact(card, fingerprint_key)
    reduced = {name: redact(value, fingerprint_key) for name, value in card.items() if name not in ("number", "cvc")}
    if "number" in card:
        number = card["number"]
        # a malformed number (not a string) is refused later, but is still a card number: fingerprint it too
        text = number if isinstance(number, str) else orjson.dumps(number).decode()
        reduced["fingerprint"] = cards.fingerprint(text, fingerprint_key)
    return reduced


def fingerprint(method: str, path: str, body: Any, secret: str) -> bytes:
    """Compared as parsed JSON: key order and whitespace do not matter. Over the redacted body (see
    `redact`): no card number or CVC goes in. Still keyed (HMAC), as the rest of a body is the merchant's."""
    canonical = orjson.dumps(redact(body, secret), option=orjson.OPT_SORT_KEYS)
    return hmac.new(secret.encode(), method.upper().encode() + b" " + path.encode() + b"\n" + canonical,
                    hashlib.sha256).digest()
