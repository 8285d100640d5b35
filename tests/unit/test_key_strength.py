"""How much a configured key carries, and why it is refused in production (API.md §19, decision 0009)."""

from __future__ import annotations

import base64
import secrets

import pytest

from paygate.domain.key_strength import MIN_BYTES, keys, read, weakness

SHIPPED = frozenset({"paygate-dev-secret-key-but-long-enough-to-pass-otherwise"})


def _read(value: str) -> tuple[bytes, str]:
    found = read(value)
    assert found is not None
    return found.material, found.encoding


def test_encodings_are_read_as_the_bytes_they_carry() -> None:
    raw = secrets.token_bytes(32)
    assert _read("whsec_" + base64.b64encode(raw).decode()) == (raw, "whsec")
    assert _read(base64.b64encode(raw).decode()) == (raw, "base64")
    assert _read(raw.hex()) == (raw, "hex")  # hex is also base64's alphabet: the stricter reading wins
    assert _read(raw.hex().upper()) == (raw, "hex")
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # secrets.token_urlsafe(32)'s shape
    assert _read(urlsafe) == (raw, "base64")
    passphrase = "correct horse battery staple, and then some"
    assert _read(passphrase) == (passphrase.encode(), "utf-8")
    assert read("whsec_not base64!") is None


@pytest.mark.parametrize("value", [
    secrets.token_hex(32),
    secrets.token_urlsafe(32),
    base64.b64encode(secrets.token_bytes(32)).decode(),
    "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    "a long passphrase, made of several words: ok",
])
def test_strong_values_pass(value: str) -> None:
    assert weakness(value, SHIPPED) is None


@pytest.mark.parametrize(("value", "why"), [
    (None, "is not set"),
    ("", "is not set"),
    ("paygate-dev-secret-key-but-long-enough-to-pass-otherwise", "shipped in paygate's source"),
    (secrets.token_hex(16), "carries 16 bytes (read as hex)"),  # 32 characters, but 16 bytes
    (secrets.token_hex(31), "carries 31 bytes (read as hex)"),
    (secrets.token_urlsafe(24), "carries 24 bytes (read as base64)"),
    ("whsec_" + base64.b64encode(secrets.token_bytes(31)).decode(), "carries 31 bytes (read as whsec)"),
    ("short passphrase!", "carries 17 bytes (read as utf-8)"),
    ("whsec_not base64 at all, not at all", "starts with whsec_ but the rest is not base64"),
    ("ab" * 40, "not random"),  # 40 bytes of hex, two byte values
    ("x" * 64, "not random"),
])
def test_weak_values_are_named(value: str | None, why: str) -> None:
    found = weakness(value, SHIPPED)
    assert found is not None and why in found


def test_standard_webhooks_secrets_must_be_base64() -> None:
    good = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    assert weakness(good, SHIPPED, standard_webhooks=True) is None
    assert weakness(good.removeprefix("whsec_"), SHIPPED, standard_webhooks=True) is None  # prefix optional
    passphrase = weakness("a long passphrase, made of several words: ok", SHIPPED, standard_webhooks=True)
    assert passphrase is not None and "not a Standard Webhooks secret" in passphrase
    short = weakness("whsec_" + base64.b64encode(b"x" * 20).decode(), SHIPPED, standard_webhooks=True)
    assert short is not None and f"at least {MIN_BYTES}" in short


def test_key_lists_keep_their_order_and_blanks() -> None:
    assert keys("new, old ,older") == ["new", "old", "older"]
    assert keys("one,,two") == ["one", "", "two"]
