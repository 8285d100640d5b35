"""The idempotency fingerprint sees cards only through their fingerprint (API.md §19 "Data at rest")."""

from __future__ import annotations

from typing import Any

from paygate.domain import cards, idempotency

KEY = "fingerprint-key-for-tests"
CARD = {"number": "4111 1111 1111 1111", "exp_month": 12, "exp_year": 2030, "cvc": "123", "name": "A B"}


def _payment(**card: Any) -> dict[str, Any]:
    return {"amount": 1000, "currency": "USD", "payment_method": {"type": "card", "card": {**CARD, **card}}}


def test_redact_replaces_number_and_cvc_by_the_card_fingerprint() -> None:
    redacted = idempotency.redact(_payment(), KEY)
    assert redacted == {"amount": 1000, "currency": "USD", "payment_method": {"type": "card", "card": {
        "exp_month": 12, "exp_year": 2030, "name": "A B",
        "fingerprint": cards.fingerprint("4111111111111111", KEY)}}}
    assert "4111" not in repr(redacted) and "123" not in repr(redacted)


def test_redact_reaches_every_card_object_and_leaves_the_rest() -> None:
    saved = {"customer": "cus_1", "type": "card", "card": {"number": "4242424242424242", "cvc": "999",
                                                           "exp_month": 1, "exp_year": 2031}}
    assert idempotency.redact(saved, KEY) == {"customer": "cus_1", "type": "card", "card": {
        "exp_month": 1, "exp_year": 2031, "fingerprint": cards.fingerprint("4242424242424242", KEY)}}
    upi = {"payment_method": {"type": "upi", "upi": {"vpa": "a@upi"}}, "metadata": {"cvc": "kept: not a card"}}
    assert idempotency.redact(upi, KEY) == upi
    assert idempotency.redact([_payment()], KEY) == [idempotency.redact(_payment(), KEY)]
    assert idempotency.redact({"card": "pm_123"}, KEY) == {"card": "pm_123"}  # not an object: nothing to reduce


def test_a_malformed_number_is_fingerprinted_not_kept() -> None:
    redacted = idempotency.redact(_payment(number=4111111111111111), KEY)
    assert redacted["payment_method"]["card"]["fingerprint"] == cards.fingerprint("4111111111111111", KEY)
    assert "number" not in redacted["payment_method"]["card"]


def test_the_cvc_does_not_change_the_fingerprint_and_the_card_does() -> None:
    fp = idempotency.fingerprint("POST", "/v1/payments", _payment(), KEY)
    assert idempotency.fingerprint("POST", "/v1/payments", _payment(cvc="999"), KEY) == fp
    assert idempotency.fingerprint("POST", "/v1/payments", _payment(cvc=None), KEY) == fp  # cvc absent: same
    without_cvc = _payment()
    del without_cvc["payment_method"]["card"]["cvc"]
    assert idempotency.fingerprint("POST", "/v1/payments", without_cvc, KEY) == fp
    # the number written with or without spaces is the same card
    assert idempotency.fingerprint("POST", "/v1/payments", _payment(number="4111111111111111"), KEY) == fp
    for other in (_payment(number="4242424242424242"), _payment(exp_month=11), _payment(name="C D"),
                  {**_payment(), "amount": 1001}):
        assert idempotency.fingerprint("POST", "/v1/payments", other, KEY) != fp
