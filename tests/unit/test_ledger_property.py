"""Ledger invariants under random money movements (pure domain, hypothesis): every journal balances, and
the merchant's balance is always captured - refunded - fees."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from paygate.domain import ledger
from paygate.domain.money import MAX_AMOUNT, fee_for

Journal = list[ledger.Posting]


def _net(journals: list[Journal], account: str) -> int:
    """Credits minus debits of one account over all journals."""
    return sum(p.amount if p.direction == "credit" else -p.amount for j in journals for p in j if p.account == account)


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, list[int]]]]:
    """A fee schedule and payments, each captured (possibly partially) then refunded in random parts."""
    bps = draw(st.integers(0, 2_000))
    fixed = draw(st.integers(0, 1_000))
    payments = []
    for _ in range(draw(st.integers(1, 12))):
        captured = draw(st.integers(1, MAX_AMOUNT))
        refunds, left = [], captured
        for _ in range(draw(st.integers(0, 5))):
            if left == 0:
                break
            part = draw(st.integers(1, left))
            refunds.append(part)
            left -= part
        payments.append((captured, refunds))
    return bps, fixed, payments


@settings(max_examples=300, deadline=None)
@given(histories())
def test_every_journal_balances_and_the_balance_is_captured_minus_refunded_minus_fees(
    history: tuple[int, int, list[tuple[int, list[int]]]],
) -> None:
    bps, fixed, payments = history
    journals: list[Journal] = []
    captured = refunded = fees = 0
    for amount, refunds in payments:
        fee = fee_for(amount, bps, fixed)
        assert 0 <= fee <= amount
        journals.append(ledger.capture_postings(amount, fee))
        captured, fees = captured + amount, fees + fee
        for part in refunds:
            journals.append(ledger.refund_postings(part))
            refunded += part

    for journal in journals:
        assert journal and ledger.balanced(journal)
        assert all(p.amount > 0 for p in journal)  # the schema's CHECK (amount > 0) never trips
    assert _net(journals, ledger.MERCHANT_BALANCE) == captured - refunded - fees
    assert _net(journals, ledger.FEE_REVENUE) == fees
    # the books as a whole balance: every account's net sums to zero
    totals: Counter[str] = Counter()
    for journal in journals:
        for p in journal:
            totals[p.account] += p.amount if p.direction == "credit" else -p.amount
    assert sum(totals.values()) == 0


@given(st.integers(1, MAX_AMOUNT), st.integers(0, 10_000), st.integers(0, 10_000))
def test_the_fee_never_exceeds_the_amount_and_a_zero_fee_posts_nothing(amount: int, bps: int, fixed: int) -> None:
    fee = fee_for(amount, bps, fixed)
    assert 0 <= fee <= amount
    postings = ledger.capture_postings(amount, fee)
    assert len(postings) == (2 if fee == 0 else 4)
    assert ledger.refund_postings(0) == []
