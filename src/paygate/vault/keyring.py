"""The vault's keys. `PAYGATE_VAULT_KEY` lists the current key first and older keys after
(`current,older,…`): new records are sealed under the first, a record is opened with the key it names.

A configured key is text; it becomes 32 bytes of AES-256 key the way docs/decisions/0016 describes:
the bytes `domain.key_strength.read` finds in it (whsec_ + base64, hex, base64, else its UTF-8) if there
are exactly 32 of them, else HKDF-SHA256 over those bytes (a passphrase, or 64 random bytes). A key is
named in every record by its *key id*: the first 8 bytes of HMAC-SHA256(key, fixed label), in hex —
stable, public, and no help in finding the key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from paygate.domain import key_strength

KEY_BYTES = 32
KEY_ID_LABEL = b"paygate vault key id v1"
HKDF_INFO = b"paygate vault key v1"


def key_bytes(value: str) -> bytes:
    """The 32-byte AES key a configured key string stands for."""
    reading = key_strength.read(value)
    material = reading.material if reading is not None else value.encode()
    if len(material) == KEY_BYTES:
        return material
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=HKDF_INFO).derive(material)


def key_id(key: bytes) -> str:
    return hmac.new(key, KEY_ID_LABEL, hashlib.sha256).digest()[:8].hex()


@dataclass(frozen=True)
class Key:
    id: str
    aead: AESGCM = field(repr=False)  # never printed


@dataclass(frozen=True)
class Keyring:
    """The keys in configuration order; `current` seals, any of them opens what it sealed."""

    keys: tuple[Key, ...]

    @classmethod
    def parse(cls, setting: str) -> Keyring:
        parts = [p for p in key_strength.keys(setting) if p]
        if not parts:
            raise ValueError("PAYGATE_VAULT_KEY holds no key")
        found: dict[str, Key] = {}
        for part in parts:
            raw = key_bytes(part)
            kid = key_id(raw)
            found.setdefault(kid, Key(kid, AESGCM(raw)))  # a key listed twice is one key
        return cls(tuple(found.values()))

    @property
    def current(self) -> Key:
        return self.keys[0]

    def get(self, kid: str) -> Key | None:
        return next((k for k in self.keys if k.id == kid), None)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={[k.id for k in self.keys]})"


@lru_cache(maxsize=8)
def keyring(setting: str) -> Keyring:
    """The keyring of a `PAYGATE_VAULT_KEY` value, parsed once per process."""
    return Keyring.parse(setting)
