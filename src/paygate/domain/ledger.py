"""Double-entry postings for each money movement; every journal balances by construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MERCHANT_BALANCE = "merchant_balance"
ACQUIRER_RECEIVABLE = "acquirer_receivable"
FEE_REVENUE = "fee_revenue"

Direction = Literal["debit", "credit"]


@dataclass(frozen=True)
class Posting:
    account: str
    direction: Direction
    amount: int


def _pair(debit: str, credit: str, amount: int) -> list[Posting]:
    return [Posting(debit, "debit", amount), Posting(credit, "credit", amount)] if amount > 0 else []


def capture_postings(amount: int, fee: int) -> list[Posting]:
    """The acquirer owes us the captured amount; the merchant is owed it, less our fee."""
    return _pair(ACQUIRER_RECEIVABLE, MERCHANT_BALANCE, amount) + _pair(MERCHANT_BALANCE, FEE_REVENUE, fee)


def refund_postings(amount: int) -> list[Posting]:
    """A refund comes out of the merchant's balance; fees are not returned."""
    return _pair(MERCHANT_BALANCE, ACQUIRER_RECEIVABLE, amount)


def balanced(postings: list[Posting]) -> bool:
    debit = sum(p.amount for p in postings if p.direction == "debit")
    credit = sum(p.amount for p in postings if p.direction == "credit")
    return debit == credit
