"""Settlement and reconciliation end to end (API.md §18): the simulator closes batches with its fee (and
the drill's drop/adjust/extra knobs); paygate's worker fetches each announced batch, matches every line,
posts the journals and records each kind of exception once; `paygate reconcile` and /metrics show them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.money_support import Money
from tests.e2e.procs import PAYGATE, MakeStack, child_env
from tests.polling import poll

FEE_BPS = 30  # 0.3 %: 5000 → 15, 2500 → 7.5 → 8 (half up)


@pytest.fixture
def money(make_stack: MakeStack) -> Iterator[Money]:
    m = Money.start(make_stack, PAYGATE_BANK_FEE_BPS=str(FEE_BPS), PAYGATE_SETTLEMENT_GRACE_S="4",
                      PAYGATE_SETTLEMENT_MATCH_WAIT_S="2")
    yield m
    m.close()


def _settle(money: Money, **knobs: Any) -> list[dict[str, Any]]:
    r = money.bank.post("/v1/settlements", json=knobs)
    assert r.status_code == 201, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def _processed(money: Money, bank_id: str) -> dict[str, Any]:
    return poll(lambda: money.db.one("SELECT * FROM settlements WHERE bank_settlement_id = %s AND status = "
                                     "'processed'", bank_id), 20)


def _mine(money: Money) -> list[dict[str, Any]]:
    r = money.shop.sk.get("/v1/settlements")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def _reconcile(money: Money, *args: str) -> tuple[int, str]:
    done = subprocess.run([str(PAYGATE), "reconcile", *args], env=child_env(money.stack.env), capture_output=True,
                          text=True, timeout=60, check=False)
    return done.returncode, done.stdout


def _gauge(money: Money, type_: str) -> float:
    text = httpx.get(f"{money.stack.api_url}/metrics", timeout=30).text
    line = next(x for x in text.splitlines() if x.startswith(f'paygate_reconciliation_exceptions_open{{type="{type_}"'))
    return float(line.rsplit(" ", 1)[1])


def test_a_normal_batch_reconciles_with_no_exception(money: Money) -> None:
    a, b = money.pay(5_000), money.pay(2_500)
    r = money.shop.sk.post("/v1/refunds", json={"payment_id": a["id"], "amount": 1_000})
    assert r.status_code == 201
    batches = _settle(money)
    assert [(x["currency"], x["line_count"]) for x in batches] == [("USD", 3)]
    bank_batch = money.bank.get(f"/v1/settlements/{batches[0]['id']}").json()
    fees = sorted(line["fee"] for line in bank_batch["lines"])
    assert fees == [0, 8, 15]
    s = _processed(money, batches[0]["id"])
    [mine] = _mine(money)
    assert (mine["id"], mine["line_count"], mine["gross"], mine["fees"], mine["net"], mine["status"]) == (
        s["id"], 3, 6_500, 23, 6_477, "reconciled")
    assert mine["exceptions"] == [] and mine["bank_settlement_id"] == batches[0]["id"]
    detail = money.shop.sk.get(f"/v1/settlements/{s['id']}").json()
    assert sorted((x["reference"], x["type"], x["amount"]) for x in detail["lines"]) == sorted(
        [(a["id"], "capture", 5_000), (a["id"], "refund", -1_000), (b["id"], "capture", 2_500)])
    assert money.balance()["settled"] == [{"amount": 6_477, "currency": "USD"}]
    for p in (a, b):
        accounts = money.ledger(p["id"])  # every journal balances
        assert accounts["acquirer_receivable"] == 0  # all the bank owed for it has been paid
    assert money.ledger(a["id"])["acquirer_fees"] == 15
    assert money.db.event_types(s["id"]) == ["settlement.reconciled"]
    assert _settle(money) == []  # nothing left: an empty batch is not created
    assert _reconcile(money, "--json") == (0, '{"exceptions": []}\n')
    assert _gauge(money, "amount_mismatch") == 0


def test_an_adjusted_line_is_one_amount_mismatch_and_moves_no_money(money: Money) -> None:
    a, b = money.pay(5_000), money.pay(2_500)
    batches = _settle(money, adjust={a["id"]: -100})
    s = _processed(money, batches[0]["id"])
    [mine] = _mine(money)
    assert mine["status"] == "exceptions" and mine["line_count"] == 2
    assert [(e["type"], e["reference"], e["expected"], e["actual"]) for e in mine["exceptions"]] == [
        ("amount_mismatch", a["id"], 5_000, 4_900)]
    assert mine["gross"] == 2_500  # only the matched line
    assert money.ledger(a["id"]).get("settled_cash", 0) == 0
    assert money.ledger(b["id"])["settled_cash"] == 2_500 - 8
    code, out = _reconcile(money, "--json")
    assert code == 1
    [e] = json.loads(out)["exceptions"]
    assert (e["type"], e["reference"], e["merchant_id"], e["settlement_id"], e["expected"], e["actual"]) == (
        "amount_mismatch", a["id"], money.shop.merchant_id, s["id"], 5_000, 4_900)
    assert _gauge(money, "amount_mismatch") == 1
    code, out = _reconcile(money, "--resolve", e["id"], "--note", "bank confirmed a chargeback fee")
    assert code == 0 and "0 open" in out
    assert _gauge(money, "amount_mismatch") == 0
    assert _reconcile(money, "--resolve", e["id"])[0] == 2  # no longer open
    assert money.db.value("SELECT count(*) FROM reconciliation_exceptions") == 1  # recorded once


def test_an_extra_line_is_an_unknown_reference_for_operators_only(money: Money) -> None:
    a = money.pay(5_000)
    batches = _settle(money, extra=[{"reference": "pay_never_charged", "type": "capture", "amount": 777}])
    s = _processed(money, batches[0]["id"])
    [mine] = _mine(money)
    assert mine["status"] == "reconciled" and mine["line_count"] == 1 and mine["exceptions"] == []
    code, out = _reconcile(money, "--json")
    [e] = json.loads(out)["exceptions"]
    assert code == 1
    assert (e["type"], e["reference"], e["merchant_id"], e["settlement_id"], e["actual"]) == (
        "unknown_reference", "pay_never_charged", None, s["id"], 777)
    assert _gauge(money, "unknown_reference") == 1
    code, text = _reconcile(money)
    assert code == 1 and "unknown_reference" in text and "1 open" in text
    assert _reconcile(money, "--since", "2999-01-01T00:00:00Z")[0] == 0
    assert money.ledger(a["id"])["acquirer_receivable"] == 0


def test_a_dropped_line_is_missing_after_the_grace_period_and_closes_when_it_arrives(money: Money) -> None:
    a, b = money.pay(5_000), money.pay(2_500)
    first = _settle(money, drop=[a["id"]])
    assert first[0]["line_count"] == 1
    _processed(money, first[0]["id"])
    row = poll(lambda: money.db.one("SELECT * FROM reconciliation_exceptions WHERE type = "
                                    "'missing_from_settlement'"), 20)
    assert (row["reference"], row["expected"], row["status"], row["settlement_id"]) == (a["id"], 5_000, "open", None)
    assert _gauge(money, "missing_from_settlement") == 1
    code, out = _reconcile(money, "--json")
    assert code == 1 and [e["type"] for e in json.loads(out)["exceptions"]] == ["missing_from_settlement"]
    second = _settle(money)
    assert second[0]["line_count"] == 1  # the dropped line, in a later batch
    _processed(money, second[0]["id"])
    assert money.db.value("SELECT status FROM reconciliation_exceptions WHERE id = %s", row["id"]) == "closed"
    assert _reconcile(money, "--json") == (0, '{"exceptions": []}\n')
    assert money.ledger(a["id"])["acquirer_receivable"] == 0
    assert money.db.value("SELECT count(*) FROM reconciliation_exceptions") == 1
    assert money.ledger(b["id"])["acquirer_receivable"] == 0


def test_disputes_settle_as_their_own_lines(money: Money) -> None:
    a = money.pay(5_000)
    money.bank_dispute(a["id"], amount=2_000)
    d = money.dispute_of(a["id"])
    money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "winning_evidence"})
    money.dispute_of(a["id"], "won")
    batches = _settle(money)
    lines = money.bank.get(f"/v1/settlements/{batches[0]['id']}").json()["lines"]
    assert [(x["type"], x["amount"]) for x in lines] == [("capture", 5_000), ("dispute", -2_000),
                                                        ("dispute_reversal", 2_000)]
    _processed(money, batches[0]["id"])
    [mine] = _mine(money)
    assert (mine["status"], mine["gross"], mine["fees"], mine["net"]) == ("reconciled", 5_000, 15, 4_985)
    assert money.ledger(a["id"])["acquirer_receivable"] == 0
    assert _reconcile(money)[0] == 0


def test_a_bad_settlement_request_is_400(money: Money) -> None:
    for body in ({"drop": "pay_x"}, {"adjust": {"pay_x": "1"}}, {"extra": [{"reference": "r", "type": "x",
                                                                          "amount": 1}]}, {"other": 1}):
        assert money.bank.post("/v1/settlements", json=body).status_code == 400, body
    assert money.bank.get("/v1/settlements/bstl_missing").status_code == 404
    assert money.shop.sk.get("/v1/settlements/stl_missing").status_code == 404


def test_a_batch_whose_announcement_never_arrives_is_found_by_the_poll(make_stack: MakeStack) -> None:
    # the bank calls back a dead address: settlement.created is never delivered, the worker's poll finds it
    m = Money.start(make_stack, PAYGATE_PUBLIC_URL="http://127.0.0.1:9", PAYGATE_SETTLEMENT_POLL_S="1")
    try:
        a = m.pay(5_000)
        batches = _settle(m)
        _processed(m, batches[0]["id"])
        assert m.db.value("SELECT count(*) FROM bank_events WHERE type = 'settlement.created'") == 0
        [mine] = _mine(m)
        assert (mine["status"], mine["gross"]) == ("reconciled", 5_000)
        assert m.ledger(a["id"])["acquirer_receivable"] == 0
    finally:
        m.close()
