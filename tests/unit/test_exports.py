"""The payments CSV's pure parts (domain.exports): major units per currency, formula-safe cells, rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from paygate.domain import exports


def test_amounts_are_major_units_with_the_currency_decimals() -> None:
    assert exports.major_units(5_000, "USD") == "50.00"
    assert exports.major_units(5, "EUR") == "0.05"
    assert exports.major_units(5_000, "JPY") == "5000"
    assert exports.major_units(1_234, "KWD") == "1.234"
    assert exports.major_units(99_999_999, "INR") == "999999.99"  # no thousands separators in data


def test_cells_that_a_spreadsheet_would_run_are_prefixed() -> None:
    for risky in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert exports.safe_cell(risky) == "'" + risky
    assert exports.safe_cell("shirt = 1") == "shirt = 1"
    assert exports.safe_cell(None) == ""
    assert exports.safe_cell(12) == "12"


def test_a_row_has_every_column_and_parses_back() -> None:
    created = datetime(2026, 11, 21, 10, 30, 1, 123456, tzinfo=UTC)
    p = {"id": "pay_1", "order_id": None, "amount": 5_000, "currency": "JPY", "status": "captured",
         "method_type": "card", "payment_method": {"type": "card", "card": {"brand": "visa", "last4": "1111"}},
         "amount_captured": 5_000, "amount_refunded": 0, "customer_id": "c1", "description": 'a "quoted",\nline',
         "created_at": created}
    text = exports.header() + exports.encode([exports.row(p)])
    [parsed] = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed) == list(exports.COLUMNS)
    assert parsed["amount"] == "5000" and parsed["currency"] == "JPY" and parsed["order_id"] == ""
    assert parsed["created_at"] == "2026-11-21T10:30:01.123456Z"
    assert parsed["description"] == 'a "quoted",\nline' and parsed["card_last4"] == "1111"
    assert text.endswith("\r\n")
