"""The two URLs the hosted checkout builds around customer authentication (API.md §15): where the bank's
challenge brings the customer back, and the order's return_url with the outcome added."""

from __future__ import annotations

import pytest

from paygate.web.checkout import back_to_shop, return_url


def test_the_challenge_comes_back_to_the_checkout_and_to_the_modal_when_embedded() -> None:
    assert return_url("https://pay.example/", "ord_1", None) == "https://pay.example/checkout/ord_1"
    assert return_url("https://pay.example", "ord_1", "http://127.0.0.1:9000") == (
        "https://pay.example/checkout/ord_1?embed=1&origin=http%3A%2F%2F127.0.0.1%3A9000")


@pytest.mark.parametrize(("given", "expected"), [
    ("https://shop.example/done", "https://shop.example/done?payment_id=pay_1&status=captured"),
    ("https://shop.example/done?ref=a%20b&x", "https://shop.example/done?ref=a%20b&x&payment_id=pay_1&status=captured"),
    ("https://shop.example/done?#top", "https://shop.example/done?payment_id=pay_1&status=captured#top"),
    # a merchant's own payment_id / status in the URL is replaced, not doubled
    ("https://shop.example/d?status=x&payment_id=y&k=1", "https://shop.example/d?k=1&payment_id=pay_1&status=captured"),
])
def test_the_return_link_adds_payment_id_and_status_and_keeps_the_rest(given: str, expected: str) -> None:
    assert back_to_shop(given, "pay_1", "captured") == expected


def test_no_return_url_no_link() -> None:
    assert back_to_shop(None, "pay_1", "captured") is None
    assert back_to_shop("", "pay_1", "failed") is None
