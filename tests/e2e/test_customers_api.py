"""/v1/customers and /v1/payment_methods over HTTP (API.md §16): create, retrieve, update, list, delete;
retrieve, list and detach saved methods; validation, merchant scoping, idempotent replay, events, and the
card number erased from the database by detach and delete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.customers_support import save_card, vault_columns
from tests.e2e.procs import Stack
from tests.e2e.test_webhooks_receiver import Client

VISA, MASTERCARD = "4242424242424242", "5555555555554444"


@pytest.fixture(scope="module")
def merchant(shared_stack: Stack) -> dict[str, str]:
    return shared_stack.merchant()


@pytest.fixture
def client(shared_stack: Stack, merchant: dict[str, str]) -> Iterator[Client]:
    c = Client(shared_stack.api_url, merchant["secret_key"])
    yield c
    c.close()


@pytest.fixture
def other(shared_stack: Stack) -> Iterator[Client]:
    c = Client(shared_stack.api_url, shared_stack.merchant()["secret_key"])
    yield c
    c.close()


def _error(r: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err.get("param") == param, err


def _events(client: Client, type: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.ok("GET", "/v1/events", type=type, limit=100)["data"]
    return data


def test_customer_create_retrieve_update_delete(client: Client, shared_stack: Stack) -> None:
    empty = client.ok("POST", "/v1/customers", {}, 201)
    assert empty["id"].startswith("cus_") and len(empty["id"]) == 30
    assert {k: v for k, v in empty.items() if k not in ("id", "created_at")} == {
        "object": "customer", "email": None, "name": None, "description": None, "metadata": {}}
    assert empty["created_at"].endswith("Z")

    made = client.ok("POST", "/v1/customers", {"email": "Ada@Example.com", "name": "Ada Lovelace",
                                               "description": "first\tline\nsecond", "metadata": {"crm": "42"}}, 201)
    assert made["email"] == "Ada@Example.com" and made["description"] == "first\tline\nsecond"
    assert client.ok("GET", f"/v1/customers/{made['id']}") == made

    updated = client.ok("PATCH", f"/v1/customers/{made['id']}", {"name": "Ada King", "metadata": {"tier": "gold"}})
    assert updated == {**made, "name": "Ada King", "metadata": {"tier": "gold"}}
    cleared = client.ok("PATCH", f"/v1/customers/{made['id']}", {"description": None})
    assert cleared["description"] is None and cleared["name"] == "Ada King"
    assert client.ok("PATCH", f"/v1/customers/{made['id']}", {}) == cleared  # nothing to change
    assert client.ok("GET", f"/v1/customers/{made['id']}") == cleared

    gone = client.ok("DELETE", f"/v1/customers/{made['id']}")
    assert gone == {"id": made["id"], "object": "customer", "deleted": True}
    _error(client.http.get(f"/v1/customers/{made['id']}"), 404, "resource_missing")
    _error(client.http.patch(f"/v1/customers/{made['id']}", json={"name": "x"}), 404, "resource_missing")
    _error(client.http.delete(f"/v1/customers/{made['id']}"), 404, "resource_missing")
    assert made["id"] not in [c["id"] for c in client.ok("GET", "/v1/customers", limit=100)["data"]]


def test_customer_validation(client: Client) -> None:
    post = client.http.post
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"email": "not-an-email"}, "parameter_invalid", "email"),
        ({"email": "a@b"}, "parameter_invalid", "email"),
        ({"email": "ada@example.com\r\nBcc: x@y.z"}, "parameter_invalid", "email"),
        ({"email": 42}, "parameter_invalid", "email"),
        ({"name": "Ada\x00"}, "parameter_invalid", "name"),
        ({"name": "Ada\tLovelace"}, "parameter_invalid", "name"),
        ({"name": "x" * 256}, "parameter_invalid", "name"),
        ({"description": "nul\x00"}, "parameter_invalid", "description"),
        ({"description": "bell\x07"}, "parameter_invalid", "description"),
        ({"metadata": {"k": 1}}, "parameter_invalid", "metadata[k]"),
        ({"metadata": {"k": "v\x00"}}, "parameter_invalid", "metadata"),
        ({"metadata": {"k\n": "v"}}, "parameter_invalid", "metadata"),
        ({"metadata": "x"}, "parameter_invalid", "metadata"),
        ({"phone": "+1"}, "parameter_unknown", "phone"),
    ]
    before = len(client.ok("GET", "/v1/customers", limit=100)["data"])
    for body, code, param in cases:
        _error(post("/v1/customers", json=body), 400, code, param)
    assert len(client.ok("GET", "/v1/customers", limit=100)["data"]) == before  # nothing was created

    cus = client.ok("POST", "/v1/customers", {"email": "v@example.com"}, 201)
    patch = client.http.patch
    _error(patch(f"/v1/customers/{cus['id']}", json={"balance": 1}), 400, "parameter_unknown", "balance")
    _error(patch(f"/v1/customers/{cus['id']}", json={"email": "nope"}), 400, "parameter_invalid", "email")
    _error(patch(f"/v1/customers/{cus['id']}", json={"metadata": None}), 400, "parameter_invalid", "metadata")
    _error(client.http.get("/v1/customers/cus_%01"), 400, "parameter_invalid", "customer_id")
    _error(client.http.get("/v1/customers", params={"email": "a\x00@b.co"}), 400, "parameter_invalid", "email")
    _error(client.http.get("/v1/customers", params={"limit": 0}), 400, "parameter_invalid", "limit")
    _error(client.http.request("DELETE", f"/v1/customers/{cus['id']}", json={"x": 1}), 400, "parameter_unknown")
    assert client.ok("GET", f"/v1/customers/{cus['id']}") == cus  # unchanged by all of it


def test_customer_list_filters_by_email_case_insensitively_and_pages(client: Client, other: Client) -> None:
    tag = client.ok("POST", "/v1/customers", {}, 201)["id"][-8:].lower()  # unique per run
    email = f"grace-{tag}@example.com"
    a = client.ok("POST", "/v1/customers", {"email": email, "name": "A"}, 201)
    b = client.ok("POST", "/v1/customers", {"email": email.upper(), "name": "B"}, 201)
    client.ok("POST", "/v1/customers", {"email": f"x{email}"}, 201)  # a longer address is not a match
    other.ok("POST", "/v1/customers", {"email": email}, 201)  # another merchant's

    found = client.ok("GET", "/v1/customers", email=email.title())
    assert [c["id"] for c in found["data"]] == [b["id"], a["id"]] and found["has_more"] is False  # newest first
    one = client.ok("GET", "/v1/customers", email=email, limit=1)
    assert [c["id"] for c in one["data"]] == [b["id"]] and one["has_more"] is True
    rest = client.ok("GET", "/v1/customers", email=email, limit=1, starting_after=b["id"])
    assert [c["id"] for c in rest["data"]] == [a["id"]] and rest["has_more"] is False
    assert client.ok("GET", "/v1/customers", email="nobody@example.com")["data"] == []
    mine = {c["id"] for c in client.ok("GET", "/v1/customers", limit=100)["data"]}
    assert not mine & {c["id"] for c in other.ok("GET", "/v1/customers", limit=100)["data"]}
    assert client.ok("GET", "/v1/customers", object="x")["object"] == "list"


def test_foreign_and_unknown_ids_are_404(client: Client, other: Client, shared_stack: Stack,
                                         merchant: dict[str, str]) -> None:
    cus = client.ok("POST", "/v1/customers", {"name": "Mine"}, 201)
    pm = save_card(shared_stack.env, merchant["merchant_id"], cus["id"], VISA)
    for method, path, body in [("GET", f"/v1/customers/{cus['id']}", None),
                               ("PATCH", f"/v1/customers/{cus['id']}", {"name": "Theirs"}),
                               ("DELETE", f"/v1/customers/{cus['id']}", None),
                               ("GET", f"/v1/customers/{cus['id']}/payment_methods", None),
                               ("GET", f"/v1/payment_methods/{pm}", None),
                               ("POST", f"/v1/payment_methods/{pm}/detach", None),
                               ("GET", "/v1/customers/cus_unknown", None),
                               ("GET", "/v1/payment_methods/pm_unknown", None),
                               ("POST", "/v1/payment_methods/pm_unknown/detach", None)]:
        _error(other.http.request(method, path, json=body), 404, "resource_missing")
    assert client.ok("GET", f"/v1/customers/{cus['id']}") == cus  # untouched
    assert client.ok("GET", f"/v1/payment_methods/{pm}")["customer"] == cus["id"]
    assert vault_columns(shared_stack.database_url, pm)["vault_ciphertext"] is not None


def test_writes_replay_under_an_idempotency_key(client: Client) -> None:
    key = {"Idempotency-Key": f"cus-create-{client.ok('POST', '/v1/customers', {}, 201)['id']}"}
    before = len(client.ok("GET", "/v1/customers", limit=100)["data"])
    first = client.http.post("/v1/customers", json={"name": "Once"}, headers=key)
    again = client.http.post("/v1/customers", json={"name": "Once"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert len(client.ok("GET", "/v1/customers", limit=100)["data"]) == before + 1
    _error(client.http.post("/v1/customers", json={"name": "Twice"}, headers=key), 422, "idempotency_key_reused")

    cid = first.json()["id"]
    pkey = {"Idempotency-Key": f"patch-{cid}"}
    p1 = client.http.patch(f"/v1/customers/{cid}", json={"name": "Renamed"}, headers=pkey)
    client.ok("PATCH", f"/v1/customers/{cid}", {"name": "Later"})
    p2 = client.http.patch(f"/v1/customers/{cid}", json={"name": "Renamed"}, headers=pkey)
    assert p2.content == p1.content and p2.headers["idempotent-replayed"] == "true"
    assert client.ok("GET", f"/v1/customers/{cid}")["name"] == "Later"  # the replay changed nothing

    dkey = {"Idempotency-Key": f"delete-{cid}"}
    d1 = client.http.delete(f"/v1/customers/{cid}", headers=dkey)
    d2 = client.http.delete(f"/v1/customers/{cid}", headers=dkey)
    assert d1.status_code == d2.status_code == 200 and d2.content == d1.content
    assert d2.headers["idempotent-replayed"] == "true"


def test_payment_methods_retrieve_list_and_detach(client: Client, shared_stack: Stack,
                                                   merchant: dict[str, str]) -> None:
    cus = client.ok("POST", "/v1/customers", {"email": "pm@example.com"}, 201)
    visa = save_card(shared_stack.env, merchant["merchant_id"], cus["id"], VISA, 4, 2030)
    mc = save_card(shared_stack.env, merchant["merchant_id"], cus["id"], MASTERCARD, 11, 2032)

    got = client.ok("GET", f"/v1/payment_methods/{visa}")
    assert got == {"id": visa, "object": "payment_method", "type": "card", "customer": cus["id"],
                   "created_at": got["created_at"],
                   "card": {"brand": "visa", "last4": "4242", "exp_month": 4, "exp_year": 2030,
                            "fingerprint": got["card"]["fingerprint"]}}
    assert len(got["card"]["fingerprint"]) == 16 and VISA not in str(got)
    listed = client.ok("GET", f"/v1/customers/{cus['id']}/payment_methods")
    assert [p["id"] for p in listed["data"]] == [mc, visa] and listed["has_more"] is False
    assert listed["data"][0]["card"]["brand"] == "mastercard"
    paged = client.ok("GET", f"/v1/customers/{cus['id']}/payment_methods", limit=1)
    assert [p["id"] for p in paged["data"]] == [mc] and paged["has_more"] is True
    attached = [e for e in _events(client, "payment_method.attached") if e["data"]["object"]["id"] in (visa, mc)]
    assert len(attached) == 2 and all(VISA not in str(e) and MASTERCARD not in str(e) for e in attached)

    _error(client.http.post(f"/v1/payment_methods/{visa}/detach", json={"customer": None}), 400, "parameter_unknown")
    key = {"Idempotency-Key": f"detach-{visa}"}
    detached = client.http.post(f"/v1/payment_methods/{visa}/detach", headers=key)
    assert detached.status_code == 200, detached.text
    assert detached.json() == {**got, "customer": None}
    replay = client.http.post(f"/v1/payment_methods/{visa}/detach", headers=key)
    assert replay.content == detached.content and replay.headers["idempotent-replayed"] == "true"
    assert client.ok("POST", f"/v1/payment_methods/{visa}/detach") == {**got, "customer": None}  # again: same

    stored = vault_columns(shared_stack.database_url, visa)
    assert stored["customer_id"] is None and stored["detached_at"] is not None
    assert stored["vault_key_id"] is stored["vault_nonce"] is stored["vault_ciphertext"] is None  # erased
    assert vault_columns(shared_stack.database_url, mc)["vault_ciphertext"] is not None  # the other one kept
    events = [e for e in _events(client, "payment_method.detached") if e["data"]["object"]["id"] == visa]
    assert len(events) == 1 and events[0]["data"]["object"]["customer"] is None  # once, for three detaches
    assert client.ok("GET", f"/v1/payment_methods/{visa}")["customer"] is None
    assert [p["id"] for p in client.ok("GET", f"/v1/customers/{cus['id']}/payment_methods")["data"]] == [mc]


def test_deleting_a_customer_detaches_and_erases_its_methods(client: Client, shared_stack: Stack,
                                                              merchant: dict[str, str]) -> None:
    cus = client.ok("POST", "/v1/customers", {"email": "leaving@example.com", "name": "Leaving"}, 201)
    keep = client.ok("POST", "/v1/customers", {"name": "Staying"}, 201)
    pms = [save_card(shared_stack.env, merchant["merchant_id"], cus["id"], n) for n in (VISA, MASTERCARD)]
    kept = save_card(shared_stack.env, merchant["merchant_id"], keep["id"], VISA)
    client.ok("DELETE", f"/v1/customers/{cus['id']}")
    for pm in pms:
        stored = vault_columns(shared_stack.database_url, pm)
        assert stored["customer_id"] is None and stored["vault_ciphertext"] is None and stored["vault_nonce"] is None
        assert client.ok("GET", f"/v1/payment_methods/{pm}")["customer"] is None
        assert len([e for e in _events(client, "payment_method.detached") if e["data"]["object"]["id"] == pm]) == 1
    assert vault_columns(shared_stack.database_url, kept)["vault_ciphertext"] is not None
    _error(client.http.get(f"/v1/customers/{cus['id']}/payment_methods"), 404, "resource_missing")
    with psycopg.connect(shared_stack.database_url) as conn:
        row = conn.execute("SELECT email, name, deleted_at FROM customers WHERE id = %s", (cus["id"],)).fetchone()
    assert row is not None and row[0] is None and row[1] is None and row[2] is not None  # personal data gone
