"""Off-session charges of a saved card through failover (API.md §14, §16), with two real simulator
processes: alpha faulted (every operation answers 500 without acting) sends the charge to beta, and both
down fails it with `processing_error`. Every check reads both banks' own inspection APIs and the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.money_support import balanced_ledger
from tests.e2e.procs import MakeStack
from tests.e2e.test_failover import Shop

CARD = {"number": "4242424242424242", "exp_month": 6, "exp_year": 2030, "cvc": "456"}
AMOUNT = 1_200


@pytest.fixture
def shop(make_stack: MakeStack) -> Iterator[Shop]:
    s = Shop(make_stack(acquirers=("alpha", "beta"), PAYGATE_BANK_TIMEOUT_S="1", PAYGATE_BANK_ATTEMPTS="1"))
    yield s
    s.close()


def saved_card(shop: Shop) -> tuple[str, str]:
    """A customer and its card, saved through the API while both banks are up: (cus_…, pm_…)."""
    r = shop.api.post("/v1/customers", json={"email": "offsession@example.com"})
    assert r.status_code == 201, r.text
    customer = str(r.json()["id"])
    r = shop.api.post("/v1/payment_methods", json={"customer": customer, "type": "card", "card": CARD})
    assert r.status_code == 201, r.text
    return customer, str(r.json()["id"])


def charge_off_session(shop: Shop, customer: str, pm: str, key: str) -> httpx.Response:
    return shop.api.post("/v1/payments", json={"amount": AMOUNT, "currency": "USD", "customer": customer,
                                               "payment_method": pm, "off_session": True},
                         headers={"Idempotency-Key": key})


def operations(shop: Shop, bank: str, reference: str) -> list[dict[str, Any]]:
    r = shop.banks[bank].get("/v1/operations", params={"reference": reference})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def test_an_off_session_charge_fails_over_from_a_faulted_alpha_to_beta(shop: Shop) -> None:
    customer, pm = saved_card(shop)
    shop.faults("alpha", {"failure_rate": 1})
    r = charge_off_session(shop, customer, pm, "off-session-failover")
    assert r.status_code == 201, r.text
    pay = r.json()
    assert (pay["status"], pay["acquirer"], pay["amount_captured"]) == ("captured", "beta", AMOUNT), pay
    assert pay["customer"] == customer and pay["payment_method"]["id"] == pm
    attempts = [(a["acquirer"], a["result"]) for a in pay["acquirer_attempts"]]
    assert attempts == [("alpha", "unavailable"), ("beta", "succeeded")], pay["acquirer_attempts"]
    # beta holds exactly one authorization (the one paygate names), alpha applied nothing
    beta_auths = [o for o in operations(shop, "beta", pay["id"]) if o["type"] == "authorization"]
    assert [(o["id"], o["status"]) for o in beta_auths] == [(pay["acquirer_references"]["authorization"],
                                                            "succeeded")]
    assert not [o for o in operations(shop, "alpha", pay["id"]) if o["status"] == "succeeded"]
    assert shop.authorizations(pay["id"]) == ["beta"]
    # the capture is one balanced journal crediting the merchant
    assert balanced_ledger(shop.api, pay["id"])["merchant_balance"] == -AMOUNT
    # a replay answers the same payment and charges nobody again
    again = charge_off_session(shop, customer, pm, "off-session-failover")
    assert again.status_code == 201 and again.json()["id"] == pay["id"], again.text
    assert shop.authorizations(pay["id"]) == ["beta"]


def test_an_off_session_charge_with_both_banks_down_fails_and_holds_nothing(shop: Shop) -> None:
    customer, pm = saved_card(shop)
    shop.faults("alpha", {"failure_rate": 1})
    shop.stack.bank_proc("beta").kill()
    r = charge_off_session(shop, customer, pm, "off-session-all-down")
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    pay = err["payment"]
    assert err["code"] == "processing_error"
    assert (pay["status"], pay["failure_code"], pay["amount_captured"]) == ("failed", "processing_error", 0)
    assert [(a["acquirer"], a["result"]) for a in pay["acquirer_attempts"]] == [("alpha", "unavailable"),
                                                                              ("beta", "unavailable")]
    # back up, neither bank holds anything for it, and the replay does not try again
    shop.stack.bank_proc("beta").start()
    shop.faults("alpha", {"failure_rate": 0})
    assert shop.authorizations(pay["id"]) == []
    again = charge_off_session(shop, customer, pm, "off-session-all-down")
    assert again.status_code == 402 and again.json()["error"]["payment"]["id"] == pay["id"], again.text
    assert shop.authorizations(pay["id"]) == []
    got = shop.api.get(f"/v1/payments/{pay['id']}").json()
    assert (got["status"], got["amount_captured"]) == ("failed", 0)
    assert balanced_ledger(shop.api, pay["id"]) == {}  # no money moved
