"""Disputes end to end (API.md §17): the simulator opens them (the test card, its test endpoint), decides
evidence and calls back; paygate withholds the amount and the fee, gives the amount back when won, keeps
refunds within what is left, applies each callback once and never backwards. Ledger checked each time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.money_support import AUTO_DISPUTE, DISPUTE_FEE, Money
from tests.e2e.procs import MakeStack
from tests.polling import poll

AMOUNT = 5_000


@pytest.fixture
def money(make_stack: MakeStack) -> Iterator[Money]:
    m = Money.start(make_stack)
    yield m
    m.close()


def _events(money: Money, dispute_id: str) -> list[str]:
    return money.db.event_types(dispute_id)


def test_the_test_card_is_disputed_for_the_whole_amount(money: Money) -> None:
    p = money.pay(AMOUNT, AUTO_DISPUTE)
    d = money.dispute_of(p["id"])
    assert (d["amount"], d["currency"], d["reason"], d["status"]) == (AMOUNT, "USD", "fraudulent", "needs_response")
    assert d["evidence"] is None and d["evidence_due_by"] > d["created_at"]
    assert money.shop.payment(p["id"])["amount_disputed"] == AMOUNT
    accounts = money.ledger(p["id"])
    # debits minus credits: the capture credited 5000, the dispute debited 5000 + the fee
    assert accounts["merchant_balance"] == DISPUTE_FEE
    assert accounts["acquirer_receivable"] == 0
    assert money.journal_kinds(p["id"]) == ["capture", "dispute"]
    assert _events(money, d["id"]) == ["dispute.created"]
    bank = money.bank.get("/v1/disputes", params={"reference": p["id"]}).json()["data"]
    assert [(b["amount"], b["reason"]) for b in bank] == [(AMOUNT, "fraudulent")]


def test_winning_evidence_wins_and_gives_the_amount_back_but_not_the_fee(money: Money) -> None:
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"], amount=2_000, reason="product_not_received")
    d = money.dispute_of(p["id"])
    assert (d["amount"], d["reason"]) == (2_000, "product_not_received")
    r = money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "Tracking: winning_evidence\nsigned"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "under_review" and r.json()["evidence"]["text"].startswith("Tracking")
    won = money.dispute_of(p["id"], "won")
    assert won["evidence"]["submitted_at"]
    assert money.shop.payment(p["id"])["amount_disputed"] == 0
    accounts = money.ledger(p["id"])
    assert accounts["merchant_balance"] == -(AMOUNT - DISPUTE_FEE)  # captured, less the fee kept
    assert accounts["acquirer_receivable"] == AMOUNT
    assert money.journal_kinds(p["id"]) == ["capture", "dispute", "dispute_reversal"]
    assert _events(money, d["id"]) == ["dispute.created", "dispute.under_review", "dispute.won"]


def test_other_evidence_loses_and_changes_no_balance(money: Money) -> None:
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"])
    d = money.dispute_of(p["id"])
    assert d["amount"] == AMOUNT and d["reason"] == "general"
    assert money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "we shipped it"}).status_code == 200
    money.dispute_of(p["id"], "lost")
    assert money.journal_kinds(p["id"]) == ["capture", "dispute"]
    assert money.ledger(p["id"])["merchant_balance"] == DISPUTE_FEE
    assert money.shop.payment(p["id"])["amount_disputed"] == AMOUNT
    assert _events(money, d["id"]) == ["dispute.created", "dispute.under_review", "dispute.lost"]


def test_accept_loses_at_once_and_every_later_answer_is_409(money: Money) -> None:
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"], amount=1_000)
    d = money.dispute_of(p["id"])
    r = money.shop.sk.post(f"/v1/disputes/{d['id']}/accept")
    assert r.status_code == 200 and r.json()["status"] == "lost", r.text
    for path, body in ((f"/v1/disputes/{d['id']}/accept", None), (f"/v1/disputes/{d['id']}/evidence", {"text": "x"})):
        r = money.shop.sk.post(path, json=body)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["type"] == "invalid_state_error" and r.json()["error"]["code"] == "dispute_not_open"
    bank = money.bank.get("/v1/disputes", params={"reference": p["id"]}).json()["data"]
    assert bank[0]["status"] == "lost"
    poll(lambda: money.db.value("SELECT count(*) FROM bank_events WHERE type = 'dispute.lost'") == 1)
    assert money.dispute(d["id"])["status"] == "lost"
    assert _events(money, d["id"]) == ["dispute.created", "dispute.lost"]
    assert money.journal_kinds(p["id"]) == ["capture", "dispute"]
    money.ledger(p["id"])


def test_evidence_under_review_is_409_and_bad_evidence_is_400(money: Money) -> None:
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"])
    d = money.dispute_of(p["id"])
    for body in ({"text": ""}, {"text": "x" * 20_001}, {"text": "nul\u0000"}, {}, {"text": "ok", "extra": 1}):
        r = money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json=body)
        assert r.status_code == 400, (body, r.text)
    assert money.dispute(d["id"])["status"] == "needs_response"
    assert money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "x" * 20_000}).status_code == 200
    r = money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "again"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispute_not_open"
    assert money.shop.sk.post(f"/v1/disputes/{d['id']}/accept").status_code == 409
    assert money.shop.sk.get("/v1/disputes/dp_missing").status_code == 404


def test_evidence_after_the_deadline_is_409(money: Money) -> None:
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"])
    d = money.dispute_of(p["id"])
    money.db.all("UPDATE disputes SET evidence_due_by = now() - interval '1 second' WHERE id = %s RETURNING id",
                 d["id"])
    r = money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "late winning_evidence"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispute_not_open"
    assert money.dispute(d["id"])["status"] == "needs_response"


def test_refunds_are_limited_by_what_is_disputed(money: Money) -> None:
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"], amount=3_000)
    d = money.dispute_of(p["id"])
    r = money.shop.sk.post("/v1/refunds", json={"payment_id": p["id"], "amount": 2_001})
    assert r.status_code == 409 and r.json()["error"]["code"] == "amount_exceeds_refundable", r.text
    r = money.shop.sk.post("/v1/refunds", json={"payment_id": p["id"], "amount": 2_000})
    assert r.status_code == 201, r.text
    r = money.shop.sk.post("/v1/refunds", json={"payment_id": p["id"], "amount": 1})
    assert r.status_code == 409
    money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "winning_evidence"})
    money.dispute_of(p["id"], "won")
    r = money.shop.sk.post("/v1/refunds", json={"payment_id": p["id"]})  # the rest, once the dispute is won
    assert r.status_code == 201 and r.json()["amount"] == 3_000, r.text
    money.ledger(p["id"])


def test_duplicate_and_backwards_callbacks_change_nothing(money: Money) -> None:
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"], amount=1_500)
    d = money.dispute_of(p["id"])
    bank_id = money.bank.get("/v1/disputes", params={"reference": p["id"]}).json()["data"][0]["id"]
    data = {"reference": p["id"], "dispute_id": bank_id, "amount": 1_500, "reason": "general"}
    created = {"id": "bevt_dup_created", "type": "dispute.created", "created_at": "2026-12-01T00:00:00Z",
               "data": data}
    for _ in range(3):  # the same event again, and a new event id for the same dispute
        assert money.callback(created).status_code == 200
    assert money.callback({**created, "id": "bevt_other_created"}).status_code == 200
    won = {"id": "bevt_won", "type": "dispute.won", "created_at": "2026-12-01T00:00:01Z", "data": data}
    assert money.callback(won).status_code == 200
    assert money.callback(won).json()["duplicate"] is True
    lost = {"id": "bevt_lost_late", "type": "dispute.lost", "created_at": "2026-12-01T00:00:02Z", "data": data}
    assert money.callback(lost).json()["outcome"] == "ignored"  # won is final
    assert money.callback({**created, "id": "bevt_created_late"}).json()["outcome"] == "redundant"
    assert money.dispute(d["id"])["status"] == "won"
    assert _events(money, d["id"]) == ["dispute.created", "dispute.won"]
    assert money.journal_kinds(p["id"]) == ["capture", "dispute", "dispute_reversal"]
    assert money.db.value("SELECT count(*) FROM disputes") == 1
    assert money.shop.payment(p["id"])["amount_disputed"] == 0
    assert money.ledger(p["id"])["merchant_balance"] == -(AMOUNT - DISPUTE_FEE)


def test_a_dispute_for_an_unknown_payment_is_recorded_and_ignored(money: Money) -> None:
    event: dict[str, Any] = {"id": "bevt_nobody", "type": "dispute.created", "created_at": "2026-12-01T00:00:00Z",
             "data": {"reference": "pay_nobody", "dispute_id": "bdp_x", "amount": 10, "reason": "general"}}
    r = money.callback(event)
    assert r.status_code == 200 and r.json()["outcome"] == "unknown_reference"
    bad = {**event, "id": "bevt_bad", "data": {**event["data"], "reason": "because"}}
    assert money.callback(bad).status_code == 400
    assert money.db.value("SELECT count(*) FROM disputes") == 0


def test_list_filters(money: Money) -> None:
    a, b = money.pay(AMOUNT), money.pay(AMOUNT)
    money.bank_dispute(a["id"])
    money.bank_dispute(b["id"])
    da, db_ = money.dispute_of(a["id"]), money.dispute_of(b["id"])
    money.shop.sk.post(f"/v1/disputes/{da['id']}/accept")
    assert [d["id"] for d in money.disputes(status="lost")] == [da["id"]]
    assert [d["id"] for d in money.disputes(status="needs_response")] == [db_["id"]]
    assert money.shop.sk.get("/v1/disputes", params={"status": "open"}).status_code == 400


def test_evidence_and_accept_replay_under_their_idempotency_key(money: Money) -> None:
    """§4: a retried answer with the same key replays the first one (byte for byte) instead of a 409."""
    p = money.pay(AMOUNT)
    money.bank_dispute(p["id"])
    d = money.dispute_of(p["id"])
    key = {"Idempotency-Key": f"evidence-{d['id']}"}
    first = money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "receipt attached"}, headers=key)
    again = money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "receipt attached"}, headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert again.content == first.content and again.headers.get("idempotent-replayed") == "true"
    other = money.shop.sk.post(f"/v1/disputes/{d['id']}/evidence", json={"text": "other"}, headers=key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    refused = money.shop.sk.post(f"/v1/disputes/{d['id']}/accept", headers={"Idempotency-Key": f"acc-{d['id']}"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "dispute_not_open"
    replay = money.shop.sk.post(f"/v1/disputes/{d['id']}/accept", headers={"Idempotency-Key": f"acc-{d['id']}"})
    assert replay.status_code == 409 and replay.content == refused.content
