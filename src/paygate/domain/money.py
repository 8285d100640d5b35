"""Money is an integer count of a currency's minor unit; the currency always travels beside it."""

from __future__ import annotations

MIN_AMOUNT = 1
MAX_AMOUNT = 99_999_999

# ISO 4217 codes paygate accepts, with their minor-unit exponent (JPY has none).
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "INR": 2, "JPY": 0, "AUD": 2, "CAD": 2, "CHF": 2, "CNY": 2,
    "HKD": 2, "SGD": 2, "SEK": 2, "NOK": 2, "DKK": 2, "NZD": 2, "MXN": 2, "BRL": 2, "ZAR": 2,
    "AED": 2, "SAR": 2, "PLN": 2, "CZK": 2, "HUF": 2, "ILS": 2, "KRW": 0, "THB": 2, "MYR": 2,
    "IDR": 2, "PHP": 2, "TRY": 2, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "VND": 0, "CLP": 0,
}


def normalize_currency(code: str) -> str | None:
    """Upper-cased code if supported, else None."""
    upper = code.strip().upper()
    return upper if upper in CURRENCY_EXPONENTS else None


def fee_for(amount: int, bps: int, fixed: int) -> int:
    """Fee on a captured amount, rounded half up, never more than the amount itself."""
    fee = (amount * bps + 5_000) // 10_000 + fixed
    return max(0, min(fee, amount))
