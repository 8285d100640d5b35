"""The payments CSV export (dashboard, API.md §11 v2): its columns and how one payment becomes one row.

Pure: the rows come from `store.payments.export_page`, the streaming from the web layer. Amounts are in
major units with the currency beside them (`50.00`, `USD`; `5000`, `JPY`), times RFC 3339 UTC, and no cell
can start a formula when the file is opened in a spreadsheet (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from paygate.domain.money import CURRENCY_EXPONENTS
from paygate.domain.views import ts

COLUMNS = ("payment_id", "order_id", "amount", "currency", "status", "method", "card_brand", "card_last4", "vpa",
           "amount_captured", "amount_refunded", "customer_id", "description", "created_at")
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP's list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def major_units(amount: int, currency: str) -> str:
    """5000, USD → "50.00"; 5000, JPY → "5000"; 1234, KWD → "1.234". Integers only: no float ever."""
    exp = CURRENCY_EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(int(amount)), 10**exp)
    return f"{sign}{major}" + (f".{minor:0{exp}d}" if exp else "")


def safe_cell(value: Any) -> str:
    """A cell as text; one that a spreadsheet would run as a formula is prefixed with `'`."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def row(p: dict[str, Any]) -> list[str]:
    pm = p.get("payment_method") or {}
    card = pm.get("card") or {}
    upi = pm.get("upi") or {}
    values = [
        p["id"], p["order_id"], major_units(p["amount"], p["currency"]), p["currency"], p["status"],
        p["method_type"], card.get("brand"), card.get("last4"), upi.get("vpa"),
        major_units(p["amount_captured"], p["currency"]), major_units(p["amount_refunded"], p["currency"]),
        p["customer_id"], p["description"], ts(p["created_at"]),
    ]
    return [safe_cell(v) for v in values]


def encode(rows: Iterable[list[str]]) -> str:
    """Rows as CSV text (RFC 4180: CRLF line ends, quotes where needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


def header() -> str:
    return encode([list(COLUMNS)])
