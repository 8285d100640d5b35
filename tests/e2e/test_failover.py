"""Failover with two real simulator processes (API.md §14, docs/decisions/0017): alpha killed mid-run, and
alpha faulted (failures and lost answers). Every check reads BOTH banks' own inspection APIs: a payment has
at most one successful authorization summed over the banks, at the acquirer paygate names."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate.domain.cards import luhn_valid
from tests.e2e.procs import MakeStack, Stack
from tests.polling import poll


def fresh_card(rng: random.Random) -> dict[str, Any]:
    """A Luhn-valid number of its own (its own balance at each bank), approved by the simulator."""
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    number = body + next(d for d in "0123456789" if luhn_valid(body + d))
    return {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}


class Shop:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        merchant = stack.merchant()
        self.api = httpx.Client(base_url=stack.api_url, auth=(merchant["secret_key"], ""), timeout=60)
        self.banks = {name: httpx.Client(base_url=url, timeout=30) for name, url in stack.bank_urls.items()}
        self.rng = random.Random(10)

    def close(self) -> None:
        for client in (self.api, *self.banks.values()):
            client.close()

    def pay(self, capture_method: str = "automatic") -> dict[str, Any]:
        r = self.api.post("/v1/payments", json={"amount": 1_200, "currency": "USD", "capture_method": capture_method,
                                                "payment_method": fresh_card(self.rng)})
        assert r.status_code in (201, 402), r.text
        body: dict[str, Any] = r.json()
        return body["error"]["payment"] if r.status_code == 402 else body

    def authorizations(self, reference: str) -> list[str]:
        """The banks holding a successful authorization for `reference`, from each bank's own records."""
        found = []
        for name, bank in self.banks.items():
            r = bank.get("/v1/operations", params={"reference": reference})
            assert r.status_code == 200, r.text
            found += [name for o in r.json()["data"] if o["type"] == "authorization" and o["status"] == "succeeded"]
        return found

    def faults(self, bank: str, body: dict[str, Any]) -> None:
        r = self.banks[bank].put("/v1/faults", json=body)
        assert r.status_code == 200, r.text


@pytest.fixture
def shop(make_stack: MakeStack) -> Iterator[Shop]:
    s = Shop(make_stack(acquirers=("alpha", "beta"), PAYGATE_BANK_TIMEOUT_S="1", PAYGATE_BANK_ATTEMPTS="1"))
    yield s
    s.close()


def check_one_each(shop: Shop, paid: list[dict[str, Any]]) -> None:
    for p in paid:
        got = shop.api.get(f"/v1/payments/{p['id']}").json()
        held_at = shop.authorizations(p["id"])
        if got["status"] == "failed":
            assert held_at == [], got
        else:
            assert held_at == [got["acquirer"]], (got, held_at)
            assert got["acquirer_references"]["authorization"] is not None


def test_alpha_killed_mid_run_sends_payments_to_beta_and_none_is_double(shop: Shop) -> None:
    before = [shop.pay() for _ in range(3)]
    assert {p["acquirer"] for p in before} == {"alpha"}
    # the references are the bank's own operation ids, as its inspection API lists them
    listed = shop.banks["alpha"].get("/v1/operations", params={"reference": before[0]["id"]}).json()["data"]
    assert before[0]["acquirer_references"] == {
        "authorization": next(o["id"] for o in listed if o["type"] == "authorization"),
        "capture": next(o["id"] for o in listed if o["type"] == "capture"), "void": None}
    shop.stack.bank_proc("alpha").kill()
    during = [shop.pay(capture_method="manual") for _ in range(8)]
    assert all((p["status"], p["acquirer"]) == ("authorized", "beta") for p in during), during
    # the first ones tried alpha (refused: unavailable) before beta; once its breaker tripped, alpha is skipped
    assert [a["acquirer"] for a in during[0]["acquirer_attempts"]] == ["alpha", "beta"]
    assert during[0]["acquirer_attempts"][0]["result"] == "unavailable"
    assert [a["acquirer"] for a in during[-1]["acquirer_attempts"]] == ["beta"]
    shop.stack.bank_proc("alpha").start()
    # later operations follow the payment's acquirer: a capture of a failed-over payment goes to beta
    cap = shop.api.post(f"/v1/payments/{during[0]['id']}/capture", json={})
    assert cap.status_code == 200 and cap.json()["acquirer_references"]["capture"] is not None, cap.text
    check_one_each(shop, before + during)


def test_alpha_losing_answers_never_authorizes_a_payment_at_both_banks(shop: Shop) -> None:
    shop.faults("alpha", {"failure_rate": 0.3, "lost_rate": 0.4})
    paid = [shop.pay(capture_method=random.Random(i).choice(["automatic", "manual"])) for i in range(24)]
    where = {p["acquirer"] for p in paid if p["status"] != "failed"}
    assert where == {"alpha", "beta"}, paid  # some were learned at alpha by inquiry, some failed over
    failed_over = [p for p in paid if [a["acquirer"] for a in p["acquirer_attempts"]] == ["alpha", "beta"]]
    assert failed_over and all(p["acquirer"] == "beta" for p in failed_over)
    check_one_each(shop, paid)


def test_a_crash_between_attempts_is_resumed_by_the_retry_at_the_recorded_acquirer(make_stack: MakeStack) -> None:
    """The API dies right after committing beta's intent (crash point `after_failover_intent`; alpha is down,
    its attempt settled failed). The client's retry with the same Idempotency-Key inquires beta's attempt
    (fencing its key; never resent) and, no acquirer being left, fails it; neither bank holds anything."""
    stack = make_stack(acquirers=("alpha", "beta"), worker=False, PAYGATE_IDEMPOTENCY_LOCK_S="2",
                       PAYGATE_CRASH_POINT="after_failover_intent")
    shop = Shop(stack)
    try:
        stack.bank_proc("alpha").kill()
        body = {"amount": 900, "currency": "USD", "payment_method": fresh_card(shop.rng)}
        with pytest.raises(httpx.HTTPError):  # the connection dies with the process
            shop.api.post("/v1/payments", json=body, headers={"Idempotency-Key": "crash-mid-failover"})
        api = stack.procs["api"]
        api.kill()
        api.env.pop("PAYGATE_CRASH_POINT")
        api.start()
        stack.bank_proc("alpha").start()  # back: a wrong resume would now authorize there
        def answered() -> httpx.Response | None:  # 409 while the dead request's key lease runs out
            resp = shop.api.post("/v1/payments", json=body, headers={"Idempotency-Key": "crash-mid-failover"})
            return None if resp.status_code == 409 else resp

        r = poll(answered, within_s=30, interval=0.3)
        assert r.status_code == 402, r.text
        p = r.json()["error"]["payment"]
        assert (p["status"], p["failure_code"]) == ("failed", "processing_error")
        assert [a["acquirer"] for a in p["acquirer_attempts"]] == ["alpha", "beta"]
        assert shop.authorizations(p["id"]) == []
        assert shop.banks["alpha"].get("/v1/operations", params={"reference": p["id"]}).json()["data"] == []
    finally:
        shop.close()
