"""The two URLs the hosted checkout builds around customer authentication (API.md §15): where the bank's
challenge brings the customer back, and the order's return_url with the outcome added (domain/authentication's
with_query, the one builder of a merchant's return link)."""

from __future__ import annotations

import pytest

from paygate.domain.authentication import with_query
from paygate.web.checkout import return_url


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
    assert with_query(given, payment_id="pay_1", status="captured") == expected
