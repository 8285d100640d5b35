"""The pure parts of disputes and settlement: journals balance, the bank's fee rounds half up, the chart
has a bar per day and a point per day with a decision, dispute moves only go forwards."""

from __future__ import annotations

from datetime import date

import pytest

from paygate.domain import chart, disputes
from paygate.domain import ledger as postings
from paygate.simbank.money import fee_for


@pytest.mark.parametrize(("amount", "fee"), [(5_000, 15), (2_500, 0), (-1_000, 0), (2_000, 7)])
def test_settlement_postings_balance_and_clear_the_receivable(amount: int, fee: int) -> None:
    ps = postings.settlement_postings(amount, fee)
    assert postings.balanced(ps)
    signed = {p.account: p.amount if p.direction == "debit" else -p.amount for p in ps}
    assert signed[postings.ACQUIRER_RECEIVABLE] == -amount
    assert signed.get(postings.SETTLED_CASH, 0) == amount - fee


def test_dispute_journals_balance_and_the_fee_is_not_reinstated() -> None:
    opened, won = postings.dispute_postings(5_000, 150), postings.dispute_won_postings(5_000)
    assert postings.balanced(opened) and postings.balanced(won)
    merchant = sum(p.amount if p.direction == "credit" else -p.amount for p in opened + won
                   if p.account == postings.MERCHANT_BALANCE)
    assert merchant == -150


@pytest.mark.parametrize(("amount", "bps", "fee"), [(2_500, 30, 8), (2_499, 30, 7), (5_000, 30, 15), (1, 0, 0)])
def test_bank_fee_rounds_half_up(amount: int, bps: int, fee: int) -> None:
    assert fee_for(amount, bps) == fee


def test_chart_has_a_bar_per_day_and_points_where_decided() -> None:
    series = chart.days([(date(2026, 12, 1), 15_000, 2, 1), (date(2026, 11, 28), 20_000, 1, 0)], date(2026, 12, 1))
    assert len(series) == 30 and series[-1].captured == 15_000 and series[0].day == date(2026, 11, 2)
    svg = chart.svg(series, "USD")
    assert svg.count('data-test-id="chart-bar"') == 30 and svg.count('data-test-id="chart-rate-point"') == 2
    assert "<script" not in svg and 'data-rate="0.6667"' in svg


def test_dispute_moves_only_forwards() -> None:
    assert disputes.can_move("needs_response", "under_review") and disputes.can_move("under_review", "won")
    assert not disputes.can_move("won", "lost") and not disputes.can_move("under_review", "needs_response")
