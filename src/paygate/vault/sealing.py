"""Sealing one card number into a vault record, and revealing it again.

A record is (key id, 96-bit nonce, ciphertext+tag). The associated data binds it to its row — the
merchant and the payment method id — so a ciphertext copied into another row, or another merchant's,
fails to open. A fresh random nonce per seal: with at most a few billion seals per key (the GCM bound for
random nonces is 2^32), a repeat is negligible, and `paygate vault rekey` moves records to a new key.

The plaintext lives only in `CardNumber`, whose repr and str show the last four digits, so that a log
line, a traceback with locals or an error message that catches one by accident does not leak it. No
error raised here carries the number or anything derived from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag

from paygate.vault.keyring import Keyring

NONCE_BYTES = 12
_AD_PREFIX = b"paygate vault v1"


class VaultError(Exception):
    """A vault operation failed; the message names records and key ids, never a card number."""


class UnknownKey(VaultError):
    pass


class Tampered(VaultError):
    pass


class CardNumber:
    """A card number that does not print itself (`digits` is the only way to the plaintext)."""

    __slots__ = ("_digits",)

    def __init__(self, digits: str) -> None:
        if not self.valid(digits):
            del digits  # not even a traceback's locals keep it (the raise below is outside any except)
            raise VaultError("a card number is 12 to 19 ASCII digits")
        self._digits = digits

    @staticmethod
    def valid(digits: str) -> bool:
        return digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19

    @property
    def digits(self) -> str:
        return self._digits

    @property
    def last4(self) -> str:
        return getattr(self, "_digits", "")[-4:]

    def __repr__(self) -> str:
        return f"CardNumber(…{self.last4})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CardNumber) and other._digits == self._digits

    def __hash__(self) -> int:
        return hash(("CardNumber", self._digits))

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a CardNumber is not serialisable")


@dataclass(frozen=True)
class Sealed:
    """What the database keeps of a saved card: no part of it reveals the number without the key."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


def associated_data(merchant_id: str, record_id: str) -> bytes:
    return b"\0".join((_AD_PREFIX, merchant_id.encode(), record_id.encode()))


def seal(ring: Keyring, number: CardNumber, *, merchant_id: str, record_id: str) -> Sealed:
    """`number` encrypted under the current key, bound to (merchant_id, record_id)."""
    if not isinstance(number, CardNumber):
        raise VaultError("seal takes a CardNumber")  # a bare str would be the plaintext in a traceback
    key = ring.current
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = key.aead.encrypt(nonce, number.digits.encode(), associated_data(merchant_id, record_id))
    return Sealed(key.id, nonce, ciphertext)


def reveal(ring: Keyring, sealed: Sealed, *, merchant_id: str, record_id: str) -> CardNumber:
    """The card number of a record. FOR THE PAYMENT PATH ONLY (charging a saved method): nothing that
    lists, shows, logs or reports a payment method calls this."""
    key = ring.get(sealed.key_id)
    if key is None:
        raise UnknownKey(f"record {record_id} is sealed under vault key id {sealed.key_id}, "
                         "which PAYGATE_VAULT_KEY does not list")
    # Errors are raised outside the except blocks and after the plaintext is dropped, so that neither an
    # exception's context (a UnicodeDecodeError holds its input) nor a frame's locals carry the number.
    plain: bytes | None
    try:
        plain = key.aead.decrypt(sealed.nonce, sealed.ciphertext, associated_data(merchant_id, record_id))
    except (InvalidTag, ValueError):
        plain = None
    if plain is None:
        raise Tampered(f"record {record_id} does not open under vault key id {sealed.key_id}: "
                       "its ciphertext, nonce or binding was altered")
    text = plain.decode("ascii", errors="replace")
    del plain
    number = CardNumber(text) if CardNumber.valid(text) else None
    del text
    if number is None:
        raise Tampered(f"record {record_id} opened to something that is not a card number")
    return number
