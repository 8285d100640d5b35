"""Double-entry postings for each money movement; every journal balances by construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MERCHANT_BALANCE = "merchant_balance"
ACQUIRER_RECEIVABLE = "acquirer_receivable"
FEE_REVENUE = "fee_revenue"
SETTLED_CASH = "settled_cash"  # what the acquirer has paid out (per merchant: `settled` in the balance, §18)
ACQUIRER_FEES = "acquirer_fees"  # the acquirer's fees on settled captures
# Journal kinds whose money passes through acquirer_receivable and so must appear in a settlement batch.
SETTLEABLE_KINDS = ("capture", "refund", "dispute", "dispute_reversal")

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


def dispute_postings(amount: int, fee: int) -> list[Posting]:
    """A dispute opens: the acquirer claws the amount back (it owes us less), the merchant loses it plus
    paygate's dispute fee (our revenue, like the capture fee)."""
    return _pair(MERCHANT_BALANCE, ACQUIRER_RECEIVABLE, amount) + _pair(MERCHANT_BALANCE, FEE_REVENUE, fee)


def dispute_won_postings(amount: int) -> list[Posting]:
    """A dispute won: the acquirer pays the amount back to the merchant; the fee stays."""
    return _pair(ACQUIRER_RECEIVABLE, MERCHANT_BALANCE, amount)


def settlement_postings(amount: int, fee: int) -> list[Posting]:
    """A settlement line (signed amount, the bank's fee): the receivable is cleared by `amount`, cash moves
    by `amount - fee`, the fee is the acquirer's cost. Balanced: -a + (a - f) + f = 0."""
    signed = {ACQUIRER_RECEIVABLE: -amount, SETTLED_CASH: amount - fee, ACQUIRER_FEES: fee}
    return [Posting(account, "debit" if v > 0 else "credit", abs(v)) for account, v in signed.items() if v != 0]


def balanced(postings: list[Posting]) -> bool:
    debit = sum(p.amount for p in postings if p.direction == "debit")
    credit = sum(p.amount for p in postings if p.direction == "credit")
    return debit == credit
