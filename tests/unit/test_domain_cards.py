from datetime import UTC, datetime

import pytest

from paygate.domain import cards, upi
from paygate.domain.money import fee_for, normalize_currency


@pytest.mark.parametrize("number", ["4111111111111111", "4242424242424242", "5555555555554444",
                                    "5105105105105100", "4000000000000002", "4000 0000 0000 0119"])
def test_test_cards_pass_luhn(number: str) -> None:
    assert cards.luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234", "abcd111111111111", "", "4" * 20])
def test_invalid_numbers_fail_luhn(number: str) -> None:
    assert not cards.luhn_valid(number)


def test_brands() -> None:
    assert cards.brand("4111111111111111") == "visa"
    assert cards.brand("5555555555554444") == "mastercard"
    assert cards.brand("378282246310005") == "amex"


def test_fingerprint_is_stable_keyed_and_not_the_number() -> None:
    a = cards.fingerprint("4111111111111111", "k1")
    assert a == cards.fingerprint("4111 1111 1111 1111", "k1")
    assert a != cards.fingerprint("4111111111111111", "k2")
    assert "1111" not in a or len(a) == 16


def test_expiry_runs_through_the_end_of_the_month() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert not cards.is_expired(11, 2026, now)
    assert cards.is_expired(10, 2026, now)
    assert cards.is_expired(3, 2020, now)
    assert not cards.is_expired(12, 30, now)  # two-digit year


def test_public_view_never_holds_the_number() -> None:
    view = cards.public_view("4111111111111111", 12, 2030, "k")
    assert view["last4"] == "1111" and view["brand"] == "visa"
    assert "4111111111111111" not in str(view)


def test_vpa() -> None:
    assert upi.valid_vpa("success@upi") and upi.valid_vpa("user.name-1@okbank")
    assert not upi.valid_vpa("no-at-sign") and not upi.valid_vpa("@bank") and not upi.valid_vpa("a@")


def test_currency_and_fees() -> None:
    assert normalize_currency("usd") == "USD"
    assert normalize_currency("XYZ") is None
    assert fee_for(10_000, 290, 30) == 320
    assert fee_for(1, 290, 30) == 1  # never more than the amount
    assert fee_for(5000, 0, 0) == 0
