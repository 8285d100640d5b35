"""API.md §16/§19: a database dump holds no card number in clear. Card payments (approved, declined,
captured by hand, refunded, replayed under an idempotency key, a number typed with spaces) and saved
cards go through a running stack; then `pg_dump` of the whole database (gateway and bank schemas) is
scanned for every number used: as digits, with spaces or dashes, as text or hex-encoded bytes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.e2e.customers_support import save_card
from tests.e2e.procs import Stack
from tests.e2e.test_webhooks_receiver import Client

PAID = {"4111111111111111": ("123", 12, 2030), "4242424242424242": ("456", 6, 2030)}
DECLINED = {"4000000000000002": ("111", 1, 2031), "4000000000009995": ("222", 2, 2031)}
SAVED = ["4111111111111111", "5555555555554444", "4000000000000127", "6011111111111117"]
# saved through the API: verified (POST /v1/payment_methods) or while paying, then charged without a CVC
VERIFIED = {"378282246310005": ("1234", 3, 2031)}
SAVED_PAYING = {"5200828282828210": ("333", 5, 2031)}
SAVE_DECLINED = {"4000000000000002": ("111", 1, 2031)}
# §15: a card to save through its challenge waits for it sealed (pending_card_saves); the dump is taken meanwhile
CHALLENGED = "4000000000003220"
EVERY = sorted({*PAID, *DECLINED, *SAVED, *VERIFIED, *SAVED_PAYING, *SAVE_DECLINED, CHALLENGED})


def _pg_dump() -> str:
    found = shutil.which("pg_dump")
    for candidate in ("/usr/lib/postgresql/15/bin/pg_dump", found):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("pg_dump is not installed")


def _spaced(number: str) -> str:
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def test_a_database_dump_holds_no_card_number(stack: Stack, tmp_path: Path) -> None:
    merchant = stack.merchant()
    client = Client(stack.api_url, merchant["secret_key"])
    try:
        for i, (number, (cvc, month, year)) in enumerate(PAID.items()):
            card = {"number": _spaced(number) if i else number, "cvc": cvc, "exp_month": month, "exp_year": year}
            body = {"amount": 1500, "currency": "USD", "capture_method": "manual", "description": "dump scan",
                    "payment_method": {"type": "card", "card": card}}
            key = {"Idempotency-Key": f"dump-scan-{i}"}
            first = client.http.post("/v1/payments", json=body, headers=key)
            assert first.status_code == 201 and first.json()["status"] == "authorized", first.text
            again = client.http.post("/v1/payments", json=body, headers=key)  # a stored response, replayed
            assert again.content == first.content
            pay = first.json()
            client.ok("POST", f"/v1/payments/{pay['id']}/capture", {})
            client.ok("POST", "/v1/refunds", {"payment_id": pay["id"], "amount": 500}, 201)
        for number, (cvc, month, year) in DECLINED.items():
            r = client.http.post("/v1/payments", json={"amount": 700, "currency": "USD", "payment_method": {
                "type": "card", "card": {"number": number, "cvc": cvc, "exp_month": month, "exp_year": year}}})
            assert r.status_code == 402, r.text
        customer = client.ok("POST", "/v1/customers", {"email": "dump@example.com", "name": "Dump"}, 201)
        saved = [save_card(stack.env, merchant["merchant_id"], customer["id"], n) for n in SAVED]
        client.ok("POST", f"/v1/payment_methods/{saved[-1]}/detach")
        assert len(client.ok("GET", f"/v1/customers/{customer['id']}/payment_methods")["data"]) == len(SAVED) - 1
        charged = []
        for number, (cvc, month, year) in VERIFIED.items():  # saved after a verification, idempotently
            card = {"number": number, "cvc": cvc, "exp_month": month, "exp_year": year}
            body = {"customer": customer["id"], "type": "card", "card": card}
            r = client.http.post("/v1/payment_methods", json=body, headers={"Idempotency-Key": "dump-save"})
            assert r.status_code == 201, r.text
            charged.append(r.json()["id"])
        for i, (number, (cvc, month, year)) in enumerate({**SAVED_PAYING, **SAVE_DECLINED}.items()):
            card = {"number": number, "cvc": cvc, "exp_month": month, "exp_year": year}
            r = client.http.post("/v1/payments", json={
                "amount": 800, "currency": "USD", "customer": customer["id"], "save_payment_method": True,
                "payment_method": {"type": "card", "card": card}}, headers={"Idempotency-Key": f"dump-pay-save-{i}"})
            if number in SAVED_PAYING:
                assert r.status_code == 201, r.text
                charged.append(r.json()["payment_method"]["id"])
            else:
                assert r.status_code == 402, r.text
        for pm in [*saved[:2], *charged]:  # every saved card charged on- and off-session
            for extra in ({}, {"off_session": True}):
                r = client.http.post("/v1/payments", json={"amount": 300, "currency": "USD", "payment_method": pm,
                                                           "customer": customer["id"], **extra})
                assert r.status_code in (201, 402), r.text
        r = client.http.post("/v1/payments", json={"amount": 300, "currency": "USD", "payment_method": charged[0],
                                                   "customer": customer["id"]})
        assert r.status_code == 201 and r.json()["payment_method"]["id"] == charged[0], r.text
        r = client.http.post("/v1/payments", json={
            "amount": 900, "currency": "USD", "customer": customer["id"], "save_payment_method": True,
            "payment_method": {"type": "card", "card": {"number": CHALLENGED, "cvc": "999", "exp_month": 4,
                                                        "exp_year": 2032}}})
        assert r.status_code == 201 and r.json()["status"] == "requires_action", r.text
        waiting = r.json()["id"]
    finally:
        client.close()

    out = tmp_path / "paygate.sql"
    subprocess.run([_pg_dump(), "--no-owner", "--file", str(out), stack.database_url], check=True, timeout=60)
    dump = out.read_text()
    # the dump is complete: the saved cards' rows, their vault columns, the payments and the bank's accounts
    assert all(pm in dump for pm in saved) and "COPY public.payment_methods" in dump
    assert "COPY bank.authentications" in dump
    assert waiting in dump.split("COPY public.pending_card_saves", 1)[1].split("\n\\.\n", 1)[0]  # sealed, held
    assert "COPY bank.accounts" in dump and dump.count("dump scan") >= len(PAID)
    assert "\\\\x" in dump or "\\x" in dump  # bytea (the ciphertexts) dumped as hex
    # in clear: the digits, with spaces or dashes, as text or as the hex of a bytea (stored responses are bytea)
    forms = {n: [n, _spaced(n), "-".join(_spaced(n).split())] for n in EVERY}
    leaks = [(n, f) for n, fs in forms.items() for f in fs if f in dump or f.encode().hex() in dump]
    assert leaks == []
    assert b"4242".hex() in dump  # the hex scan can see: last4 values are in the stored responses
