"""The card vault (src/paygate/vault): AES-GCM records that name their key, bound to their row, with
rotation; and a plaintext that never shows in a repr, an error or a traceback."""

from __future__ import annotations

import base64
import pickle
import secrets
import traceback
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from paygate.vault import CardNumber, Keyring, Sealed, Tampered, UnknownKey, VaultError, keyring, reveal, seal
from paygate.vault.keyring import HKDF_INFO, key_bytes, key_id
from paygate.vault.sealing import NONCE_BYTES

NUMBER = "4242424242424242"
WHERE = {"merchant_id": "mer_a", "record_id": "pm_1"}


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.fixture
def ring() -> Keyring:
    return Keyring.parse(secrets.token_hex(32))


def test_round_trip_names_the_key_and_uses_a_fresh_nonce(ring: Keyring) -> None:
    one = seal(ring, CardNumber(NUMBER), **WHERE)
    two = seal(ring, CardNumber(NUMBER), **WHERE)
    assert one.key_id == two.key_id == ring.current.id
    assert len(one.nonce) == NONCE_BYTES == 12 and one.nonce != two.nonce
    assert one.ciphertext != two.ciphertext
    assert NUMBER.encode() not in one.ciphertext + one.nonce + one.key_id.encode()
    assert len(one.ciphertext) == len(NUMBER) + 16  # the number and GCM's tag, nothing more
    assert reveal(ring, one, **WHERE).digits == NUMBER
    assert reveal(ring, two, **WHERE) == CardNumber(NUMBER)


def test_a_wrong_key_with_the_same_id_does_not_open(ring: Keyring) -> None:
    sealed = seal(ring, CardNumber(NUMBER), **WHERE)
    other = Keyring.parse(secrets.token_hex(32))
    impostor = replace(sealed, key_id=other.current.id)  # as if the record named the other key
    with pytest.raises(Tampered):
        reveal(other, impostor, **WHERE)


def test_an_unknown_key_id_is_a_clear_error(ring: Keyring) -> None:
    sealed = seal(ring, CardNumber(NUMBER), **WHERE)
    other = Keyring.parse(secrets.token_hex(32))
    with pytest.raises(UnknownKey) as caught:
        reveal(other, sealed, **WHERE)
    assert sealed.key_id in str(caught.value) and "pm_1" in str(caught.value)
    assert "PAYGATE_VAULT_KEY" in str(caught.value)


def test_rotation_old_records_still_open_new_ones_use_the_new_key() -> None:
    old_key, new_key = secrets.token_hex(32), secrets.token_hex(32)
    before = Keyring.parse(old_key)
    old_record = seal(before, CardNumber(NUMBER), **WHERE)
    after = Keyring.parse(f"{new_key},{old_key}")
    assert after.current.id != before.current.id
    assert reveal(after, old_record, **WHERE).digits == NUMBER  # the older key still opens it
    new_record = seal(after, CardNumber("5555555555554444"), **WHERE)
    assert new_record.key_id == after.current.id == Keyring.parse(new_key).current.id
    assert reveal(after, new_record, **WHERE).digits == "5555555555554444"
    with pytest.raises(UnknownKey):  # once the old key is dropped, its records no longer open
        reveal(Keyring.parse(new_key), old_record, **WHERE)


@pytest.mark.parametrize("part", ["ciphertext", "tag", "nonce", "key_id"])
def test_tampering_with_a_record_is_detected(ring: Keyring, part: str) -> None:
    sealed = seal(ring, CardNumber(NUMBER), **WHERE)
    if part == "ciphertext":
        bad = replace(sealed, ciphertext=_flip(sealed.ciphertext, 0))
    elif part == "tag":
        bad = replace(sealed, ciphertext=_flip(sealed.ciphertext, len(sealed.ciphertext) - 1))
    elif part == "nonce":
        bad = replace(sealed, nonce=_flip(sealed.nonce, 5))
    else:
        both = Keyring.parse(",".join([secrets.token_hex(32), secrets.token_hex(32)]))
        sealed = seal(both, CardNumber(NUMBER), **WHERE)
        bad = replace(sealed, key_id=both.keys[1].id)  # names the other key of the ring
        with pytest.raises(Tampered):
            reveal(both, bad, **WHERE)
        return
    with pytest.raises(Tampered):
        reveal(ring, bad, **WHERE)


@pytest.mark.parametrize("where", [{"merchant_id": "mer_b", "record_id": "pm_1"},
                                   {"merchant_id": "mer_a", "record_id": "pm_2"}])
def test_a_ciphertext_copied_to_another_row_does_not_open(ring: Keyring, where: dict[str, str]) -> None:
    sealed = seal(ring, CardNumber(NUMBER), **WHERE)
    with pytest.raises(Tampered):
        reveal(ring, sealed, **where)


def test_truncated_or_empty_records_are_tampered_not_crashes(ring: Keyring) -> None:
    sealed = seal(ring, CardNumber(NUMBER), **WHERE)
    for bad in (replace(sealed, ciphertext=b""), replace(sealed, ciphertext=sealed.ciphertext[:10]),
                replace(sealed, nonce=b"")):
        with pytest.raises(Tampered):
            reveal(ring, bad, **WHERE)


def test_key_strings_become_32_bytes_as_documented() -> None:
    raw = secrets.token_bytes(32)
    assert key_bytes(raw.hex()) == raw
    assert key_bytes(base64.b64encode(raw).decode()) == raw
    assert key_bytes("whsec_" + base64.b64encode(raw).decode()) == raw
    long = secrets.token_bytes(64)
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(long)
    assert key_bytes(long.hex()) == expected  # 64 bytes: HKDF, not truncation
    phrase = "correct horse battery staple, and then some"
    assert len(key_bytes(phrase)) == 32 and key_bytes(phrase) != phrase.encode()[:32]
    # the key id is derived from the key and never is (or contains) it
    kid = key_id(raw)
    assert len(kid) == 16 and kid not in raw.hex()
    assert Keyring.parse(raw.hex()).current.id == Keyring.parse(base64.b64encode(raw).decode()).current.id == kid


def test_the_keyring_reads_the_setting_current_first_and_never_prints_keys() -> None:
    a, b = secrets.token_hex(32), secrets.token_hex(32)
    ring = keyring(f" {a} , {b} ,")
    assert [k.id for k in ring.keys] == [key_id(bytes.fromhex(a)), key_id(bytes.fromhex(b))]
    assert keyring(f" {a} , {b} ,") is ring  # parsed once per process
    assert a not in repr(ring) and b not in repr(ring) and a not in repr(ring.current)
    with pytest.raises(ValueError):
        Keyring.parse(" , ")


def test_the_number_never_shows_in_a_repr_an_error_or_a_traceback(ring: Keyring) -> None:
    number = CardNumber(NUMBER)
    assert NUMBER not in repr(number) and NUMBER not in str(number) and NUMBER not in f"{number}"
    assert repr(number) == "CardNumber(…4242)"
    with pytest.raises(TypeError):
        pickle.dumps(number)

    def rendered(exc: BaseException) -> str:
        tb = traceback.TracebackException.from_exception(exc, capture_locals=True)  # what a verbose log shows
        return "".join(tb.format()) + repr(exc) + str(exc) + repr(exc.args)

    # an error raised inside the vault with the number in hand: tampering found while revealing
    sealed = seal(ring, number, **WHERE)
    try:
        reveal(ring, replace(sealed, ciphertext=_flip(sealed.ciphertext, 3)), **WHERE)
    except VaultError as exc:
        text = rendered(exc)
    else:
        raise AssertionError("tampering went unnoticed")
    assert NUMBER not in text and "4242 4242" not in text

    # a record that opens to something else than a number (sealed by hand under the same key and binding)
    from paygate.vault.sealing import associated_data
    nonce = secrets.token_bytes(12)
    odd = Sealed(ring.current.id, nonce, ring.current.aead.encrypt(nonce, NUMBER.encode() + b"x",
                                                                   associated_data(**WHERE)))
    with pytest.raises(Tampered) as caught:
        reveal(ring, odd, **WHERE)
    assert NUMBER not in rendered(caught.value)

    # a malformed number refused at the door: the vault's own frames keep nothing of it (the caller's
    # frame, here the test's, holds what it passed, which is not the vault's to erase)
    for bad in ("4242 4242 4242 4242", NUMBER + "x"):
        with pytest.raises(VaultError) as refused:
            CardNumber(bad)
        tb = traceback.TracebackException.from_exception(refused.value, capture_locals=True)
        vault_frames = [f for f in tb.stack if "paygate/vault" in f.filename]
        assert vault_frames, tb.stack
        assert all(NUMBER not in repr(f.locals) and "4242 4242" not in repr(f.locals) for f in vault_frames)
        assert NUMBER not in str(refused.value) and refused.value.__context__ is None
    with pytest.raises(VaultError) as bare:
        seal(ring, NUMBER, **WHERE)  # type: ignore[arg-type]
    assert "CardNumber" in str(bare.value) and NUMBER not in str(bare.value)
