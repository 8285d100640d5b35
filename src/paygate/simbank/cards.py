"""The simulator's test-card table (API.md §12) and the decision an authorization gets from it.

Pure: no I/O. The balance check happens in the store, under the account's row lock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from paygate.simbank.rules import digits_only, is_expired, normalize_year

DEFAULT_BALANCE = 1_000_000  # 10,000.00 in minor units


@dataclass(frozen=True)
class CardRule:
    balance: int = DEFAULT_BALANCE
    cvc: str | None = None  # listed CVC: any other gives incorrect_cvc
    expiry: tuple[int, int] | None = None  # listed (month, year): any other gives expired_card
    decline: str | None = None  # always declined with this code (after the expiry check)
    server_error: bool = False  # every authorization answers 500 and is not applied
    challenge: bool = False  # the cardholder must authenticate first (§15): authorized only after a challenge


TEST_CARDS: dict[str, CardRule] = {
    "4111111111111111": CardRule(cvc="123", expiry=(12, 2030)),
    "4242424242424242": CardRule(balance=50_000, cvc="456", expiry=(6, 2030)),
    "5555555555554444": CardRule(balance=0, cvc="789", expiry=(9, 2030)),
    "5105105105105100": CardRule(cvc="321", expiry=(3, 2020)),
    "4000000000000002": CardRule(decline="card_declined"),
    "4000000000009995": CardRule(balance=0, decline="insufficient_funds"),
    "4000000000000127": CardRule(decline="incorrect_cvc"),
    "4000000000000119": CardRule(server_error=True),
    "4000000000003220": CardRule(challenge=True),
}

# The one code that passes a challenge (§15); any other code fails it.
CHALLENGE_CODE = "123456"

_ANY = CardRule()


def card_key(secret: str) -> bytes:
    """The key of the simulator's card hashes, derived from its own secret (PAYGATE_BANK_WEBHOOK_SECRET).
    Derived rather than the secret itself, so a hash is never also a valid callback signature."""
    return hmac.new(secret.encode(), b"paygate-bank card-hash v1", hashlib.sha256).digest()


def card_hash(number: str, key: bytes) -> bytes:
    """What the bank stores instead of the number: keyed (HMAC-SHA-256), because an unkeyed hash of a
    card number falls to brute force (a BIN and a Luhn digit leave about 10^9 candidates). Changing the
    secret changes every hash, so accounts start again from their opening balance: it is a simulator."""
    return hmac.new(key, digits_only(number).encode(), hashlib.sha256).digest()


def lookup(number: str) -> CardRule:
    return TEST_CARDS.get(digits_only(number), _ANY)


def initial_balance(number: str) -> int:
    return lookup(number).balance


def needs_challenge(number: str) -> bool:
    return lookup(number).challenge


def decide(number: str, exp_month: int, exp_year: int, cvc: str | None, now: datetime) -> str | None:
    """The failure code the card table gives, or None when only the balance remains to be checked.

    Order: a past expiry first (every card), then a listed expiry, then a listed CVC, then a fixed decline.
    """
    card = lookup(number)
    if is_expired(exp_month, exp_year, now):
        return "expired_card"
    if card.expiry is not None and card.expiry != (exp_month, normalize_year(exp_year)):
        return "expired_card"
    if card.cvc is not None and cvc is not None and card.cvc != cvc:  # None: a saved card's charge, no CVC
        return "incorrect_cvc"
    return card.decline
