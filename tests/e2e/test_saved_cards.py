"""Saving cards and paying with them over HTTP (API.md §16): POST /v1/payment_methods (verified at the
simulator, declines and the challenge card save nothing, idempotent without the number in the stored
response), save while paying, charging a saved method on- and off-session, the checks on customer, CVC and
detached methods, `customer` on payments and its list filter, and a saved card charged at another acquirer
than the one that verified it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.procs import MakeStack, Stack
from tests.e2e.smtp_catcher import Catcher
from tests.e2e.test_webhooks_receiver import Client

VISA = {"number": "4242424242424242", "exp_month": 6, "exp_year": 2030, "cvc": "456"}
VISA2 = {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
DECLINED = {"number": "4000000000000002", "exp_month": 1, "exp_year": 2031, "cvc": "111"}
CHALLENGE = {"number": "4000000000003220", "exp_month": 1, "exp_year": 2031, "cvc": "111"}


@pytest.fixture(scope="module")
def merchant(shared_stack: Stack) -> dict[str, str]:
    return shared_stack.merchant()


@pytest.fixture
def client(shared_stack: Stack, merchant: dict[str, str]) -> Iterator[Client]:
    c = Client(shared_stack.api_url, merchant["secret_key"])
    yield c
    c.close()


def _error(r: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code, err
    if param is not None:
        assert err.get("param") == param, err
    return err


def _customer(client: Client) -> str:
    return str(client.ok("POST", "/v1/customers", {"email": "saved@example.com"}, 201)["id"])


def _methods(client: Client, customer: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.ok("GET", f"/v1/customers/{customer}/payment_methods")["data"]
    return data


def _attached_events(client: Client, pm_id: str) -> list[dict[str, Any]]:
    events = client.ok("GET", "/v1/events", type="payment_method.attached", limit=100)["data"]
    return [e for e in events if e["data"]["object"]["id"] == pm_id]


def _save(client: Client, customer: str, card: dict[str, Any] = VISA) -> dict[str, Any]:
    return client.ok("POST", "/v1/payment_methods", {"customer": customer, "type": "card", "card": card}, 201)


def _charge(client: Client, pm: str, customer: str, **extra: Any) -> httpx.Response:
    return client.http.post("/v1/payments", json={"amount": 1200, "currency": "USD", "payment_method": pm,
                                                  "customer": customer, **extra})


# --- POST /v1/payment_methods ------------------------------------------------------------------------------

def test_a_verified_card_is_saved_for_the_customer(client: Client) -> None:
    customer = _customer(client)
    pm = _save(client, customer)
    assert pm["id"].startswith("pm_") and pm["object"] == "payment_method" and pm["customer"] == customer
    assert pm["card"]["brand"] == "visa" and pm["card"]["last4"] == "4242"
    assert (pm["card"]["exp_month"], pm["card"]["exp_year"]) == (6, 2030) and pm["card"]["fingerprint"]
    assert "number" not in pm["card"] and "cvc" not in pm["card"]
    assert [m["id"] for m in _methods(client, customer)] == [pm["id"]]
    assert client.ok("GET", f"/v1/payment_methods/{pm['id']}") == pm
    assert len(_attached_events(client, pm["id"])) == 1


def test_a_declined_verification_is_402_and_saves_nothing(client: Client) -> None:
    customer = _customer(client)
    r = client.http.post("/v1/payment_methods", json={"customer": customer, "type": "card", "card": DECLINED})
    err = _error(r, 402, "card_declined")
    assert err["type"] == "card_error"
    assert _methods(client, customer) == []


def test_the_challenge_card_cannot_be_saved_without_authentication(client: Client) -> None:
    customer = _customer(client)
    r = client.http.post("/v1/payment_methods", json={"customer": customer, "type": "card", "card": CHALLENGE})
    _error(r, 402, "authentication_required")
    assert _methods(client, customer) == []


def test_saving_for_an_unknown_customer_is_404(client: Client) -> None:
    r = client.http.post("/v1/payment_methods", json={"customer": "cus_nope", "type": "card", "card": VISA})
    _error(r, 404, "resource_missing", "customer")


def test_a_replayed_save_answers_the_first_and_its_stored_response_has_no_number(
    shared_stack: Stack, client: Client, merchant: dict[str, str],
) -> None:
    customer = _customer(client)
    body = {"customer": customer, "type": "card", "card": VISA2}
    headers = {"Idempotency-Key": f"save-{customer}"}
    first = client.http.post("/v1/payment_methods", json=body, headers=headers)
    again = client.http.post("/v1/payment_methods", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and first.content == again.content
    assert len(_methods(client, customer)) == 1
    with psycopg.connect(shared_stack.database_url) as conn:
        row = conn.execute("SELECT response_body FROM idempotency_keys WHERE merchant_id = %s AND key = %s",
                           (merchant["merchant_id"], headers["Idempotency-Key"])).fetchone()
    assert row is not None
    stored = bytes(row[0])
    assert first.json()["id"].encode() in stored  # it is the stored response…
    assert str(VISA2["number"]).encode() not in stored and b"cvc" not in stored  # …and it holds no card number


# --- save while paying --------------------------------------------------------------------------------------

def test_a_successful_payment_saves_its_card(client: Client) -> None:
    customer = _customer(client)
    r = client.http.post("/v1/payments", json={"amount": 900, "currency": "USD", "customer": customer,
                                               "save_payment_method": True,
                                               "payment_method": {"type": "card", "card": VISA}})
    assert r.status_code == 201, r.text
    pay = r.json()
    assert pay["status"] == "captured" and pay["customer"] == customer
    pm_id = pay["payment_method"]["id"]
    assert pm_id.startswith("pm_") and pay["payment_method"]["card"]["last4"] == "4242"
    assert [m["id"] for m in _methods(client, customer)] == [pm_id]
    assert client.ok("GET", f"/v1/payments/{pay['id']}")["payment_method"]["id"] == pm_id
    assert len(_attached_events(client, pm_id)) == 1
    captured = [e for e in client.ok("GET", "/v1/events", type="payment.captured", limit=100)["data"]
                if e["data"]["object"]["id"] == pay["id"]]
    assert [e["data"]["object"]["payment_method"].get("id") for e in captured] == [pm_id]  # the event names it
    # and the saved card pays again, without its CVC
    again = _charge(client, pm_id, customer)
    assert again.status_code == 201 and again.json()["status"] == "captured", again.text


def test_a_manual_capture_authorization_saves_its_card(client: Client) -> None:
    customer = _customer(client)
    pay = client.ok("POST", "/v1/payments", {"amount": 900, "currency": "USD", "customer": customer,
                                             "capture_method": "manual", "save_payment_method": True,
                                             "payment_method": {"type": "card", "card": VISA2}}, 201)
    assert pay["status"] == "authorized" and pay["payment_method"]["id"].startswith("pm_")


def test_a_failed_payment_saves_nothing(client: Client) -> None:
    customer = _customer(client)
    r = client.http.post("/v1/payments", json={"amount": 900, "currency": "USD", "customer": customer,
                                               "save_payment_method": True,
                                               "payment_method": {"type": "card", "card": DECLINED}})
    err = _error(r, 402, "card_declined")
    assert "id" not in err["payment"]["payment_method"]
    assert _methods(client, customer) == []


def test_saving_while_paying_needs_a_customer_and_a_card(client: Client) -> None:
    r = client.http.post("/v1/payments", json={"amount": 900, "currency": "USD", "save_payment_method": True,
                                               "payment_method": {"type": "card", "card": VISA}})
    _error(r, 400, "parameter_missing", "customer")
    customer = _customer(client)
    r = client.http.post("/v1/payments", json={"amount": 900, "currency": "INR", "save_payment_method": True,
                                               "customer": customer,
                                               "payment_method": {"type": "upi", "upi": {"vpa": "success@upi"}}})
    _error(r, 400, "parameter_invalid", "save_payment_method")
    assert _methods(client, customer) == []


# --- paying with a saved method ------------------------------------------------------------------------------

def test_a_saved_card_is_charged_on_and_off_session(client: Client) -> None:
    customer = _customer(client)
    pm = _save(client, customer)
    for extra in ({}, {"off_session": True}):
        r = _charge(client, pm["id"], customer, **extra)
        assert r.status_code == 201, r.text
        pay = r.json()
        assert pay["status"] == "captured" and pay["customer"] == customer and pay["amount_captured"] == 1200
        assert pay["payment_method"] == {"id": pm["id"], "type": "card", "card": pm["card"]}


def test_charging_a_saved_card_checks_customer_cvc_and_attachment(client: Client) -> None:
    customer, stranger = _customer(client), _customer(client)
    pm = _save(client, customer)
    _error(_charge(client, pm["id"], stranger), 400, "parameter_invalid", "customer")
    r = client.http.post("/v1/payments", json={"amount": 1200, "currency": "USD", "payment_method": pm["id"]})
    _error(r, 400, "parameter_missing", "customer")
    _error(_charge(client, pm["id"], customer, cvc="456"), 400, "parameter_unknown", "cvc")
    _error(_charge(client, "pm_unknown", customer), 404, "resource_missing", "payment_method")
    client.ok("POST", f"/v1/payment_methods/{pm['id']}/detach")
    _error(_charge(client, pm["id"], customer), 400, "parameter_invalid", "payment_method")
    # none of the refusals made a payment
    assert client.ok("GET", "/v1/payments", customer=customer)["data"] == []


def test_off_session_needs_a_saved_method(client: Client) -> None:
    r = client.http.post("/v1/payments", json={"amount": 900, "currency": "USD", "off_session": True,
                                               "payment_method": {"type": "card", "card": VISA}})
    _error(r, 400, "parameter_invalid", "off_session")


def test_payments_are_listed_by_customer(client: Client) -> None:
    a, b = _customer(client), _customer(client)
    pm_a, pm_b = _save(client, a), _save(client, b, VISA2)
    paid_a = [_charge(client, pm_a["id"], a).json()["id"] for _ in range(2)]
    _charge(client, pm_b["id"], b)
    listed = client.ok("GET", "/v1/payments", customer=a)["data"]
    assert [p["id"] for p in listed] == list(reversed(paid_a))
    assert all(p["customer"] == a for p in listed)


def test_an_unknown_customer_on_a_payment_is_404(client: Client) -> None:
    r = client.http.post("/v1/payments", json={"amount": 900, "currency": "USD", "customer": "cus_nobody",
                                               "payment_method": {"type": "card", "card": VISA}})
    _error(r, 404, "resource_missing", "customer")


# --- two acquirers ------------------------------------------------------------------------------------------

def test_a_card_verified_at_one_acquirer_is_charged_off_session_at_another(make_stack: MakeStack) -> None:
    """alpha is down while the card is saved: the verification fails over to beta (alpha certainly never
    got it). Then beta is down and alpha back: the off-session charge goes where the payment path sends
    it (today: the first configured acquirer; routing's failover loop replaces that) and succeeds there —
    a saved card is not tied to the acquirer that verified it."""
    stack = make_stack(acquirers=("alpha", "beta"))
    client = Client(stack.api_url, stack.merchant()["secret_key"])
    try:
        customer = _customer(client)
        stack.bank_proc("alpha").stop()
        pm = _save(client, customer)
        stack.bank_proc("alpha").start()
        stack.bank_proc("beta").stop()
        r = _charge(client, pm["id"], customer, off_session=True)
        assert r.status_code == 201, r.text
        pay = r.json()
        assert pay["status"] == "captured" and pay["acquirer"] == "alpha" and pay["payment_method"]["id"] == pm["id"]
    finally:
        client.close()


def test_a_payment_of_a_customer_emails_its_receipt_to_the_customer(make_stack: MakeStack) -> None:
    catcher = Catcher().start()
    try:
        stack = make_stack(PAYGATE_SMTP_URL=catcher.url, PAYGATE_SMTP_FROM="shop <r@shop.test>",
                           PAYGATE_WORKER_POLL_S="0.2")
        client = Client(stack.api_url, stack.merchant()["secret_key"])
        try:
            customer = client.ok("POST", "/v1/customers", {"email": "grace@example.com"}, 201)["id"]
            pm = _save(client, customer)
            pay = _charge(client, pm["id"], customer, off_session=True).json()
            [mail] = catcher.wait(1)
            assert mail.rcpt_tos == ["grace@example.com"] and pay["id"] in mail.part("text/plain")
            assert str(VISA["number"]).encode() not in mail.raw
        finally:
            client.close()
    finally:
        catcher.stop()


def test_a_publishable_key_pays_an_order_only_with_its_customers_saved_card(
    shared_stack: Stack, client: Client, merchant: dict[str, str],
) -> None:
    owner, stranger = _customer(client), _customer(client)
    pm_owner, pm_stranger = _save(client, owner), _save(client, stranger, VISA2)
    order = client.ok("POST", "/v1/orders", {"amount": 700, "currency": "USD", "customer": owner}, 201)
    with httpx.Client(base_url=shared_stack.api_url, auth=(merchant["publishable_key"], ""), timeout=30) as pk:
        r = pk.post("/v1/payments", json={"order_id": order["id"], "payment_method": pm_stranger["id"]})
        _error(r, 400, "parameter_invalid", "customer")
        r = pk.post("/v1/payments", json={"order_id": order["id"], "payment_method": pm_owner["id"],
                                          "off_session": True})
        assert r.status_code == 403, r.text  # a merchant-initiated charge is the secret key's
        r = pk.post("/v1/payments", json={"order_id": order["id"], "payment_method": pm_owner["id"]})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "captured" and r.json()["customer"] == owner
    plain = client.ok("POST", "/v1/orders", {"amount": 700, "currency": "USD"}, 201)
    r = client.http.post(f"/checkout/{plain['id']}/pay", json={"payment_method": pm_owner["id"]},
                         headers={"Idempotency-Key": f"co-{plain['id']}"})
    _error(r, 400, "parameter_missing", "customer")  # an order without a customer has no saved cards
