"""The challenge page shows the amount in the currency's own minor unit (API.md §15, §12 v2)."""

from __future__ import annotations

import pytest

from paygate.simbank.challenges import _money


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (4200, "EUR", "42.00 EUR"), (123456, "USD", "1,234.56 USD"), (5, "USD", "0.05 USD"),
    (1000, "JPY", "1,000 JPY"), (1000, "KWD", "1.000 KWD"), (12345, "BHD", "12.345 BHD"),
])
def test_amounts_use_the_currencys_minor_unit(amount: int, currency: str, shown: str) -> None:
    assert _money(amount, currency) == shown
