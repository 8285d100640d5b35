"""The simulated bank against a real PostgreSQL (its own database per module), served in-process through
httpx.ASGITransport with its lifespan running (pool + settlement/callback loop). UPI callbacks go over
real HTTP to a tiny asyncio receiver on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from paygate.acquirers.base import AcquirerResult, OutcomeUnknown
from paygate.acquirers.simbank import SimBank
from paygate.cli import bank_config
from paygate.config import Settings
from paygate.domain.ids import new_id
from paygate.simbank.app import MIGRATIONS, create_app
from paygate.store import migrate
from tests.polling import eventually

PG = "host=127.0.0.1 port=5432 user=postgres"
SECRET = "whsec_" + base64.b64encode(b"bank-sim-test-secret-0123456789").decode()


# --- fixtures (module-local on purpose: tests/conftest.py belongs to others) ----------------------


@pytest.fixture(scope="module")
def bank_db() -> Iterator[str]:
    """A fresh database with the bank schema migrated; dropped at the end of the module."""
    name = f"paygate_banktest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    conninfo = f"{PG} dbname={name}"
    try:
        assert migrate.apply(conninfo, "bank", MIGRATIONS) == ["0001_bank.sql", "0002_verifications.sql",
                                                          "0003_disputes_settlement.sql", "0004_authentications.sql",
                                                          "0005_one_round_trip.sql"]
        assert migrate.apply(conninfo, "bank", MIGRATIONS) == []
        yield conninfo
    finally:
        with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@dataclass
class Bank:
    http: httpx.AsyncClient
    transport: httpx.ASGITransport

    async def post(self, path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = {} if key is None else {"Idempotency-Key": key}
        return await self.http.post(path, json=body, headers=headers)

    async def authorize(self, key: str | None = None, **body: Any) -> httpx.Response:
        return await self.post("/v1/authorizations", _auth_body(**body), key or new_id("key"))

    async def ops(self, reference: str) -> list[dict[str, Any]]:
        resp = await self.http.get("/v1/operations", params={"reference": reference})
        assert resp.status_code == 200
        data: list[dict[str, Any]] = resp.json()["data"]
        return data

    async def card(self, number: str) -> dict[str, int]:
        resp = await self.http.get(f"/v1/cards/{number}")
        assert resp.status_code == 200
        return {k: v for k, v in resp.json().items() if k != "object"}

    async def inquire(self, key: str) -> dict[str, Any]:
        resp = await self.post("/v1/inquiries", {"idempotency_key": key}, new_id("inq"))
        assert resp.status_code == 200
        data: dict[str, Any] = resp.json()
        return data


@asynccontextmanager
async def running_bank(conninfo: str, name: str = "bank", **overrides: Any) -> AsyncIterator[Bank]:
    values: dict[str, Any] = {
        "bank_failure_rate": 0.0,
        "bank_lost_rate": 0.0,
        "bank_latency_ms": "0-0",
        "bank_duplicate_rate": 0.0,
        "bank_upi_delay_ms": "50-100",
        "bank_webhook_secret": SECRET,
    }
    values.update(overrides)
    app = create_app(conninfo, bank_config(Settings(**values), name))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bank") as http:
            yield Bank(http, transport)


@pytest.fixture
async def bank(bank_db: str) -> AsyncIterator[Bank]:
    async with running_bank(bank_db) as b:
        yield b


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server recording every request; answers 500 to the first `fail_first`."""

    fail_first: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/bank/events"

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((headers, body))
            status = "500 Nope" if len(self.requests) <= self.fail_first else "200 OK"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for headers, body in self.requests:
            event = Webhook(SECRET).verify(body, headers)  # raises on a bad signature
            assert headers["webhook-id"] == event["id"]
            out.append(event)
        return out


# --- helpers ---------------------------------------------------------------------------------------


def luhn_card(prefix: str = "4") -> str:
    """A random Luhn-valid 16-digit number outside the test-card table (fresh account per call)."""
    body = prefix + "".join(random.choice("0123456789") for _ in range(14 - len(prefix))) + "7"
    for check in "0123456789":
        candidate = body + check
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def ref() -> str:
    return new_id("pay")


def _auth_body(
    *,
    reference: str,
    amount: int = 1_000,
    number: str = "4111111111111111",
    cvc: str = "123",
    exp: tuple[int, int] = (12, 2030),
    capture: bool = False,
    vpa: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    pm: dict[str, Any]
    if vpa is not None:
        pm = {"type": "upi", "upi": {"vpa": vpa}}
    else:
        pm = {"type": "card", "card": {"number": number, "exp_month": exp[0], "exp_year": exp[1], "cvc": cvc}}
    return {
        "reference": reference,
        "amount": amount,
        "currency": "USD",
        "capture": capture,
        "payment_method": pm,
        "callback_url": callback_url,
    }


# --- the test-card table -------------------------------------------------------------------------

FUTURE = (11, 2031)


@pytest.mark.parametrize(
    ("number", "cvc", "exp", "status", "failure"),
    [
        ("4111111111111111", "123", (12, 2030), "succeeded", None),
        ("4111111111111111", "124", (12, 2030), "failed", "incorrect_cvc"),
        ("4111111111111111", "123", (11, 2030), "failed", "expired_card"),
        ("4111111111111111", "123", (1, 2020), "failed", "expired_card"),
        ("4242424242424242", "456", (6, 2030), "succeeded", None),
        ("4242424242424242", "123", (6, 2030), "failed", "incorrect_cvc"),
        ("4242424242424242", "456", (7, 2030), "failed", "expired_card"),
        ("5555555555554444", "789", (9, 2030), "failed", "insufficient_funds"),
        ("5555555555554444", "788", (9, 2030), "failed", "incorrect_cvc"),
        ("5105105105105100", "321", (3, 2020), "failed", "expired_card"),
        ("5105105105105100", "321", (3, 2031), "failed", "expired_card"),
        ("4000000000000002", "111", FUTURE, "failed", "card_declined"),
        ("4000000000009995", "111", FUTURE, "failed", "insufficient_funds"),
        ("4000000000000127", "111", FUTURE, "failed", "incorrect_cvc"),
        ("4000000000000002", "111", (1, 2021), "failed", "expired_card"),
        ("6011000990139424", "999", FUTURE, "succeeded", None),
        ("6011000990139424", "999", (2, 2022), "failed", "expired_card"),
    ],
)
async def test_card_table(
    bank: Bank, number: str, cvc: str, exp: tuple[int, int], status: str, failure: str | None
) -> None:
    reference = ref()
    resp = await bank.authorize(reference=reference, amount=100, number=number, cvc=cvc, exp=exp)
    assert resp.status_code == 200, resp.text
    op = resp.json()
    assert (op["status"], op["failure_code"], op["type"]) == (status, failure, "authorization")
    assert op["id"].startswith("bop_") and len(op["id"]) == 4 + 26
    assert op["reference"] == reference and op["object"] == "bank_operation" and op["captured"] is False
    listed = await bank.ops(reference)
    assert [(o["id"], o["type"], o["status"], o["failure_code"]) for o in listed] == [
        (op["id"], "authorization", status, failure)
    ]
    if status == "succeeded":  # leave no hold behind for the other tests
        void = await bank.post("/v1/voids", {"reference": reference}, new_id("key"))
        assert void.json()["status"] == "succeeded"


async def test_any_other_luhn_card_has_10000_and_lazy_account(bank: Bank) -> None:
    number = luhn_card()
    assert await bank.card(number) == {"available": 1_000_000, "held": 0, "captured": 0, "refunded": 0}
    resp = await bank.authorize(reference=ref(), amount=1_000_001, number=number, exp=FUTURE, cvc="000")
    assert resp.json()["failure_code"] == "insufficient_funds"
    resp = await bank.authorize(reference=ref(), amount=1_000_000, number=number, exp=FUTURE, cvc="000")
    assert resp.json()["status"] == "succeeded"
    assert await bank.card(number) == {"available": 0, "held": 1_000_000, "captured": 0, "refunded": 0}


async def test_card_4000000000000119_answers_500_and_applies_nothing(bank: Bank) -> None:
    reference, key = ref(), new_id("key")
    for _ in range(2):
        resp = await bank.authorize(key, reference=reference, number="4000000000000119", exp=FUTURE)
        assert resp.status_code == 500
        assert resp.json()["error"]["type"] == "api_error"
    assert await bank.ops(reference) == []
    inquiry = await bank.inquire(key)  # inquiries answer normally: nothing was applied
    assert inquiry["found"] is False
    assert inquiry["operation"]["status"] == "failed"
    assert inquiry["operation"]["failure_code"] == "processing_error"


async def test_bad_requests(bank: Bank) -> None:
    body = _auth_body(reference=ref())
    assert (await bank.post("/v1/authorizations", body)).status_code == 400  # no Idempotency-Key
    bad = _auth_body(reference=ref(), number="4111111111111112")
    resp = await bank.post("/v1/authorizations", bad, "k-" + new_id("x"))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_number"
    for broken in ({**body, "amount": 0}, {**body, "amount": "10"}, {**body, "extra": 1}, {"reference": "x"}):
        assert (await bank.post("/v1/authorizations", broken, new_id("key"))).status_code == 400
    upi = _auth_body(reference=ref(), vpa="not a vpa")
    assert (await bank.post("/v1/authorizations", upi, new_id("key"))).status_code == 400
    assert (await bank.post("/v1/captures", {"reference": "pay_x"}, new_id("key"))).status_code == 400
    assert (await bank.http.get("/v1/operations")).status_code == 400
    assert (await bank.http.get("/v1/cards/1234")).status_code == 404
    assert (await bank.http.get("/healthz")).json() == {"status": "ok"}


# --- holds, captures, voids, refunds ----------------------------------------------------------------


async def test_holds_count_against_the_4242_balance(bank: Bank) -> None:
    number, cvc, exp = "4242424242424242", "456", (6, 2030)
    available = (await bank.card(number))["available"]
    assert available > 300
    first, second, third = ref(), ref(), ref()
    r1 = await bank.authorize(reference=first, amount=available - 100, number=number, cvc=cvc, exp=exp)
    assert r1.json()["status"] == "succeeded"
    r2 = await bank.authorize(reference=second, amount=101, number=number, cvc=cvc, exp=exp)
    assert r2.json()["failure_code"] == "insufficient_funds"
    r3 = await bank.authorize(reference=third, amount=100, number=number, cvc=cvc, exp=exp)
    assert r3.json()["status"] == "succeeded"
    assert (await bank.card(number))["available"] == 0
    for reference in (first, third):
        assert (await bank.post("/v1/voids", {"reference": reference}, new_id("key"))).json()["status"] == ("succeeded")
    assert (await bank.card(number))["available"] == available
    assert (await bank.card(number))["held"] == 0


async def test_capture_void_refund_balances(bank: Bank) -> None:
    number = luhn_card("5")
    auth: dict[str, Any] = {"number": number, "exp": FUTURE, "cvc": "321"}

    async def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await bank.post(path, body, new_id("key"))
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    a = ref()
    assert (await bank.authorize(reference=a, amount=10_000, **auth)).json()["status"] == "succeeded"
    assert await bank.card(number) == {"available": 990_000, "held": 10_000, "captured": 0, "refunded": 0}
    assert (await call("/v1/captures", {"reference": a, "amount": 10_001}))["failure_code"] == (
        "amount_exceeds_authorization"
    )
    cap = await call("/v1/captures", {"reference": a, "amount": 6_000})
    assert (cap["type"], cap["status"], cap["amount"]) == ("capture", "succeeded", 6_000)
    # The rest of the hold is released by the (partial) capture.
    assert await bank.card(number) == {"available": 994_000, "held": 0, "captured": 6_000, "refunded": 0}
    again = await call("/v1/captures", {"reference": a, "amount": 1})
    assert (again["status"], again["failure_code"]) == ("failed", "authorization_not_active")
    assert (await call("/v1/voids", {"reference": a}))["failure_code"] == "authorization_not_active"
    assert (await call("/v1/refunds", {"reference": a, "amount": 2_000}))["status"] == "succeeded"
    assert (await call("/v1/refunds", {"reference": a, "amount": 3_000}))["status"] == "succeeded"
    over = await call("/v1/refunds", {"reference": a, "amount": 1_001})
    assert (over["status"], over["failure_code"]) == ("failed", "amount_exceeds_captured")
    assert (await call("/v1/refunds", {"reference": a, "amount": 1_000}))["status"] == "succeeded"
    assert (await call("/v1/refunds", {"reference": a, "amount": 1}))["failure_code"] == "amount_exceeds_captured"
    assert await bank.card(number) == {
        "available": 1_000_000,
        "held": 0,
        "captured": 6_000,
        "refunded": 6_000,
    }
    listed = await bank.ops(a)
    assert [(o["type"], o["status"]) for o in listed] == [
        ("authorization", "succeeded"),
        ("capture", "failed"),
        ("capture", "succeeded"),
        ("capture", "failed"),
        ("void", "failed"),
        ("refund", "succeeded"),
        ("refund", "succeeded"),
        ("refund", "failed"),
        ("refund", "succeeded"),
        ("refund", "failed"),
    ]
    assert [o["created_at"] for o in listed] == sorted(o["created_at"] for o in listed)
    clocks = [o["id"].split("_", 1)[1][:10] for o in listed]  # ids sort by creation ms (none finer: ids.py)
    assert clocks == sorted(clocks)
    inquiry_of_auth = await bank.inquire("nope-" + new_id("k"))
    assert inquiry_of_auth["found"] is False

    v = ref()
    await bank.authorize(reference=v, amount=5_000, **auth)
    assert (await bank.card(number))["held"] == 5_000
    assert (await call("/v1/refunds", {"reference": v, "amount": 1}))["failure_code"] == ("authorization_not_captured")
    voided = await call("/v1/voids", {"reference": v})
    assert (voided["type"], voided["status"], voided["amount"]) == ("void", "succeeded", 5_000)
    assert (await bank.card(number))["held"] == 0
    assert (await call("/v1/captures", {"reference": v, "amount": 1}))["failure_code"] == "authorization_not_active"
    assert (await call("/v1/voids", {"reference": v}))["failure_code"] == "authorization_not_active"

    missing = ref()
    for path, body in (
        ("/v1/captures", {"reference": missing, "amount": 1}),
        ("/v1/voids", {"reference": missing}),
        ("/v1/refunds", {"reference": missing, "amount": 1}),
    ):
        assert (await call(path, body))["failure_code"] == "authorization_not_found"

    c = ref()
    resp = (await bank.authorize(reference=c, amount=7_000, capture=True, **auth)).json()
    assert (resp["status"], resp["captured"]) == ("succeeded", True)
    assert [(o["type"], o["status"], o["amount"]) for o in await bank.ops(c)] == [
        ("authorization", "succeeded", 7_000),
        ("capture", "succeeded", 7_000),
    ]
    assert await bank.card(number) == {"available": 993_000, "held": 0, "captured": 13_000, "refunded": 6_000}


# --- idempotency -----------------------------------------------------------------------------------


async def test_idempotent_replay_and_key_reuse(bank: Bank) -> None:
    number, reference, key = luhn_card(), ref(), new_id("key")
    body = _auth_body(reference=reference, amount=2_500, number=number, exp=FUTURE)
    first = await bank.post("/v1/authorizations", body, key)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    # Same request, keys reordered: compared as parsed JSON.
    again = await bank.post("/v1/authorizations", dict(reversed(list(body.items()))), key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(await bank.ops(reference)) == 1
    assert (await bank.card(number))["held"] == 2_500
    reused = await bank.post("/v1/authorizations", {**body, "amount": 2_501}, key)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    other_path = await bank.post("/v1/captures", {"reference": reference, "amount": 1}, key)
    assert other_path.status_code == 422
    # A capture's stored answer is replayed too, even after the state moved on.
    cap_key = new_id("key")
    cap = await bank.post("/v1/captures", {"reference": reference, "amount": 2_500}, cap_key)
    cap_again = await bank.post("/v1/captures", {"reference": reference, "amount": 2_500}, cap_key)
    assert cap_again.json()["id"] == cap.json()["id"] and cap_again.json()["status"] == "succeeded"
    assert (await bank.card(number))["captured"] == 2_500
    # The authorization replays with its current state (captured since).
    assert (await bank.post("/v1/authorizations", body, key)).json()["captured"] is True


async def test_concurrent_duplicates_make_one_operation(bank: Bank) -> None:
    number, reference, key = luhn_card(), ref(), new_id("key")
    responses = await asyncio.gather(
        *(bank.authorize(key, reference=reference, amount=4_000, number=number, exp=FUTURE) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 9
    assert len(await bank.ops(reference)) == 1
    assert (await bank.card(number))["held"] == 4_000


async def test_concurrent_authorizations_never_overdraw(bank: Bank) -> None:
    number = luhn_card()
    responses = await asyncio.gather(
        *(bank.authorize(reference=ref(), amount=150_000, number=number, exp=FUTURE) for _ in range(12))
    )
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["failed"] * 6 + ["succeeded"] * 6  # 6 x 150,000 <= 1,000,000 < 7 x 150,000
    assert await bank.card(number) == {"available": 100_000, "held": 900_000, "captured": 0, "refunded": 0}


async def test_inquiry_and_tombstone(bank: Bank) -> None:
    number, reference = luhn_card(), ref()
    # Known key: found, with the operation's current state.
    key = new_id("key")
    op = (await bank.authorize(key, reference=reference, amount=100, number=number, exp=FUTURE)).json()
    found = await bank.inquire(key)
    assert found["found"] is True and found["operation"] == op
    # Unknown key: a tombstone, and the late original is answered with it instead of acting.
    late_key, late_ref = new_id("key"), ref()
    tomb = await bank.inquire(late_key)
    assert tomb["found"] is False
    assert (tomb["operation"]["status"], tomb["operation"]["failure_code"]) == ("failed", "processing_error")
    late = await bank.authorize(late_key, reference=late_ref, amount=100, number=number, exp=FUTURE)
    assert late.status_code == 200 and late.headers["idempotent-replayed"] == "true"
    assert late.json()["id"] == tomb["operation"]["id"] and late.json()["status"] == "failed"
    # not applied; listed (the tombstone itself never is) as the refused arrival it was
    assert [(o["type"], o["status"], o["failure_code"], o["amount"]) for o in await bank.ops(late_ref)] == [
        ("authorization", "failed", "processing_error", 100)]
    assert (await bank.card(number))["held"] == 100
    again = await bank.inquire(late_key)
    assert again["found"] is False and again["operation"]["id"] == tomb["operation"]["id"]
    # Concurrent inquiries of one unknown key agree on one tombstone.
    k = new_id("key")
    many = await asyncio.gather(*(bank.inquire(k) for _ in range(5)))
    assert len({m["operation"]["id"] for m in many}) == 1


async def test_capture_void_refund_replay_and_fences(bank: Bank) -> None:
    """Each runs as one function call (migration 0005): a taken key is answered by the replay path — the
    stored answer, a conflict for another body, and, once an inquiry fenced the key, never an action."""
    number = luhn_card()
    held, captured = ref(), ref()
    await bank.authorize(reference=held, amount=3_000, number=number, exp=FUTURE)
    await bank.authorize(reference=captured, amount=2_000, number=number, exp=FUTURE, capture=True)
    for path, body in (("/v1/refunds", {"reference": captured, "amount": 500}), ("/v1/voids", {"reference": held})):
        key = new_id("key")
        first = await bank.post(path, body, key)
        again = await bank.post(path, body, key)
        assert first.status_code == again.status_code == 200 and first.json()["status"] == "succeeded"
        assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
        assert (await bank.post(path, {**body, "reference": ref()}, key)).status_code == 422
    assert await bank.card(number) == {"available": 998_500, "held": 0, "captured": 2_000, "refunded": 500}
    late = ref()
    await bank.authorize(reference=late, amount=1_000, number=number, exp=FUTURE)
    for path, body in (("/v1/captures", {"reference": late, "amount": 1_000}), ("/v1/voids", {"reference": late}),
                       ("/v1/refunds", {"reference": captured, "amount": 100})):
        key = new_id("key")
        tomb = await bank.inquire(key)
        assert tomb["found"] is False
        fenced = await bank.post(path, body, key)
        assert fenced.status_code == 200 and fenced.headers["idempotent-replayed"] == "true"
        assert fenced.json()["id"] == tomb["operation"]["id"]
    assert await bank.card(number) == {"available": 997_500, "held": 1_000, "captured": 2_000, "refunded": 500}
    assert [(o["type"], o["status"], o["failure_code"]) for o in await bank.ops(late)] == [
        ("authorization", "succeeded", None), ("capture", "failed", "processing_error"),
        ("void", "failed", "processing_error")]


async def test_the_dispute_test_card_is_disputed_at_either_capture(bank: Bank) -> None:
    """4000000000000259: the dispute is scheduled by the capture, automatic (bank_authorize_card) or later
    (bank_capture, which reads the card's flag from the authorization); another card's capture schedules none."""
    later, at_once, plain = ref(), ref(), ref()
    await bank.authorize(reference=later, amount=1_500, number="4000000000000259", exp=FUTURE)
    await bank.authorize(reference=at_once, amount=2_500, number="4000000000000259", exp=FUTURE, capture=True)
    await bank.authorize(reference=plain, amount=3_500, number=luhn_card(), exp=FUTURE)
    for reference, amount in ((later, 1_500), (plain, 3_500)):
        cap = await bank.post("/v1/captures", {"reference": reference, "amount": amount}, new_id("key"))
        assert cap.json()["status"] == "succeeded"

    async def disputes(reference: str) -> list[tuple[int, str]]:
        resp = await bank.http.get("/v1/disputes", params={"reference": reference})
        return [(d["amount"], d["reason"]) for d in resp.json()["data"]]

    assert await disputes(later) == [(1_500, "fraudulent")]
    assert await disputes(at_once) == [(2_500, "fraudulent")]
    assert await disputes(plain) == []


# --- faults ---------------------------------------------------------------------------------------


async def test_failure_rate_one_answers_500_and_applies_nothing(bank_db: str) -> None:
    number, reference, key = luhn_card(), ref(), new_id("key")
    async with running_bank(bank_db, bank_failure_rate=1.0) as faulty:
        for _ in range(3):
            resp = await faulty.authorize(key, reference=reference, amount=500, number=number, exp=FUTURE)
            assert resp.status_code == 500
        assert await faulty.ops(reference) == []
        assert (await faulty.card(number))["held"] == 0
        async with running_bank(bank_db) as healthy:  # the key was never stored: it acts afresh
            ok = await healthy.authorize(key, reference=reference, amount=500, number=number, exp=FUTURE)
            assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers
        found = await faulty.inquire(key)  # inquiries are never faulted
        assert found["found"] is True and found["operation"]["status"] == "succeeded"


async def test_lost_rate_one_applies_then_answers_500(bank_db: str) -> None:
    number, reference, key = luhn_card(), ref(), new_id("key")
    async with running_bank(bank_db, bank_lost_rate=1.0) as lossy:
        resp = await lossy.authorize(key, reference=reference, amount=700, number=number, exp=FUTURE)
        assert resp.status_code == 500
        listed = await lossy.ops(reference)
        assert [(o["type"], o["status"]) for o in listed] == [("authorization", "succeeded")]
        assert (await lossy.card(number))["held"] == 700
        replay = await lossy.authorize(key, reference=reference, amount=700, number=number, exp=FUTURE)
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["id"] == listed[0]["id"]
        # The client's retry with the same key recovers the outcome.
        client = SimBank("http://bank", transport=lossy.transport, backoff_base_s=0)
        async with client:
            result = await client.capture(key=new_id("key"), reference=reference, amount=700)
        assert result.outcome == "succeeded"
        assert (await lossy.card(number))["captured"] == 700


async def test_latency(bank_db: str) -> None:
    async with running_bank(bank_db, bank_latency_ms="30-40") as slow:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await slow.authorize(reference=ref(), number=luhn_card(), exp=FUTURE)
        assert loop.time() - start >= 0.03


async def test_client_against_the_bank(bank: Bank) -> None:
    client = SimBank("http://bank", transport=bank.transport, backoff_base_s=0.001)
    async with client:
        number, reference = luhn_card(), ref()
        pm: dict[str, Any] = {
            "type": "card",
            "card": {"number": number, "exp_month": 1, "exp_year": 2032, "cvc": "000"},
        }
        common: dict[str, Any] = {"currency": "USD", "payment_method": pm, "callback_url": None}
        res = await client.authorize(key="a-" + reference, reference=reference, amount=900, capture=False, **common)
        assert res.outcome == "succeeded" and res.operation_id and not res.captured
        assert (await client.card(number))["held"] == 900
        assert (await client.capture(key="c-" + reference, reference=reference, amount=900)).outcome == "succeeded"
        refund = await client.refund(key="r-" + reference, reference=reference, amount=1_000)
        assert refund == AcquirerResult("failed", "amount_exceeds_captured", refund.operation_id)
        assert [o["type"] for o in await client.operations(reference)] == [
            "authorization",
            "capture",
            "refund",
        ]
        declined_pm = {"type": "card", "card": {**pm["card"], "number": "4000000000000002"}}
        declined = await client.authorize(
            key="d-" + reference,
            reference=ref(),
            amount=1,
            currency="USD",
            payment_method=declined_pm,
            capture=True,
            callback_url=None,
        )
        assert (declined.outcome, declined.failure_code) == ("failed", "card_declined")
        # 4000000000000119: every attempt 500 → unknown; the inquiry then confirms nothing happened.
        broken_pm = {"type": "card", "card": {**pm["card"], "number": "4000000000000119"}}
        key = "b-" + reference
        with pytest.raises(OutcomeUnknown):  # 5xx after sending: it may have been applied, only asking tells
            await client.authorize(
                key=key,
                reference=ref(),
                amount=1,
                currency="USD",
                payment_method=broken_pm,
                capture=True,
                callback_url=None,
            )
        assert await client.inquire(key=key) == AcquirerResult(
            "failed", "processing_error", (await bank.inquire(key))["operation"]["id"]
        )


# --- UPI and callbacks ------------------------------------------------------------------------------


async def test_upi_settles_and_sends_signed_callbacks(bank: Bank) -> None:
    async with Receiver() as receiver:
        good, bad = ref(), ref()
        ok_key = new_id("key")
        first = await bank.authorize(ok_key, reference=good, amount=1_234, vpa="success@upi", callback_url=receiver.url)
        assert (first.json()["status"], first.json()["captured"]) == ("pending", False)
        await bank.authorize(reference=bad, amount=99, vpa="failure@upi", callback_url=receiver.url)

        await eventually(lambda: _count(receiver, 2))
        events = {e["data"]["reference"]: e for e in receiver.events()}
        ok, ko = events[good], events[bad]
        assert ok["type"] == "operation.succeeded" and ok["id"].startswith("bevt_")
        assert ok["data"] == {"reference": good, "operation": "capture", "amount": 1_234}
        assert ko["type"] == "operation.failed"
        assert ko["data"] == {
            "reference": bad,
            "operation": "capture",
            "amount": 99,
            "failure_code": "payment_declined",
        }
        assert ok["created_at"].endswith("Z")

        assert [(o["type"], o["status"]) for o in await bank.ops(good)] == [
            ("authorization", "succeeded"),
            ("capture", "succeeded"),
        ]
        assert [(o["type"], o["status"], o["failure_code"]) for o in await bank.ops(bad)] == [
            ("authorization", "failed", "payment_declined")
        ]
        settled = await bank.inquire(ok_key)
        assert (settled["found"], settled["operation"]["status"], settled["operation"]["captured"]) == (
            True,
            "succeeded",
            True,
        )
        # UPI captured → refundable at the bank.
        r = await bank.post("/v1/refunds", {"reference": good, "amount": 234}, new_id("key"))
        assert r.json()["status"] == "succeeded"
        assert len(receiver.requests) == 2  # card operations and refunds get no callbacks


async def test_upi_without_callback_url_still_settles(bank: Bank) -> None:
    reference, key = ref(), new_id("key")
    await bank.authorize(key, reference=reference, amount=5, vpa="someone@okbank")

    async def settled() -> bool:
        return bool((await bank.inquire(key))["operation"]["status"] == "succeeded")

    await eventually(settled)


async def test_callbacks_retried_until_2xx(bank: Bank, bank_db: str) -> None:
    async with Receiver(fail_first=2) as receiver:
        await bank.authorize(reference=ref(), amount=10, vpa="retry@upi", callback_url=receiver.url)
        await eventually(lambda: _count(receiver, 3))
        ids = {headers["webhook-id"] for headers, _ in receiver.requests}
        assert len(ids) == 1
        assert len(receiver.events()) == 3  # every attempt is signed afresh and verifies
        await eventually(lambda: _delivered(bank_db, ids.pop()))


async def _delivered(conninfo: str, event_id: str) -> bool:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cur = await conn.execute(
            b"SELECT bool_and(delivered_at IS NOT NULL), max(attempts) FROM bank.callbacks WHERE event_id = %s",
            (event_id,),
        )
        row = await cur.fetchone()
    return row is not None and row[0] is True and row[1] == 3


async def test_no_card_number_or_cvc_is_stored(bank: Bank, bank_db: str) -> None:
    number, reference, key = luhn_card("37"), ref(), new_id("key")
    first = await bank.authorize(key, reference=reference, amount=10, number=number, cvc="9431", exp=FUTURE)
    # The CVC is not even part of what a replay is compared with.
    again = await bank.authorize(key, reference=reference, amount=10, number=number, cvc="1111", exp=FUTURE)
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    async with await psycopg.AsyncConnection.connect(bank_db) as conn:
        tables = [
            r[0]
            for r in await (await conn.execute(b"SELECT tablename FROM pg_tables WHERE schemaname = 'bank'")).fetchall()
        ]
        assert {"accounts", "operations", "idempotency_keys", "authorizations"} <= set(tables)
        for table in tables:
            cur = await conn.execute(f"SELECT t::text FROM bank.{table} t".encode())
            for (text,) in await cur.fetchall():
                assert number not in text and number[-8:] not in text, table


async def test_duplicate_rate_one_sends_each_callback_twice(bank_db: str) -> None:
    async with Receiver() as receiver, running_bank(bank_db, bank_duplicate_rate=1.0) as dup:
        refs = [ref(), ref()]
        for reference in refs:
            await dup.authorize(reference=reference, amount=42, vpa="dup@upi", callback_url=receiver.url)
        await eventually(lambda: _count(receiver, 4))
        events = receiver.events()
        for reference in refs:
            mine = [e for e in events if e["data"]["reference"] == reference]
            assert len(mine) == 2 and mine[0] == mine[1]


async def test_pending_upi_survives_a_bank_restart(bank_db: str) -> None:
    async with Receiver() as receiver:
        reference, key = ref(), new_id("key")
        async with running_bank(bank_db, bank_upi_delay_ms="400-500") as first:
            resp = await first.authorize(
                key, reference=reference, amount=77, vpa="later@upi", callback_url=receiver.url
            )
            assert resp.json()["status"] == "pending"
        assert receiver.requests == []  # stopped before settling
        async with running_bank(bank_db) as second:
            await eventually(lambda: _count(receiver, 1))
            assert receiver.events()[0]["data"]["reference"] == reference
            assert (await second.inquire(key))["operation"]["status"] == "succeeded"


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n


async def test_a_verification_checks_the_card_and_holds_nothing(bank: Bank) -> None:
    client = SimBank("http://bank", transport=bank.transport, backoff_base_s=0)
    async with client:
        number, reference = luhn_card(), ref()
        card = {"number": number, "exp_month": 1, "exp_year": 2032, "cvc": "000"}
        pm: dict[str, Any] = {"type": "card", "card": card}
        ok = await client.verify(key="v-" + reference, reference=reference, payment_method=pm)
        assert ok.outcome == "succeeded" and ok.operation_id
        declined = await client.verify(key="d-" + reference, reference=reference, payment_method={
            "type": "card", "card": {**pm["card"], "number": "4000000000000002"}})
        assert (declined.outcome, declined.failure_code) == ("failed", "card_declined")
        again = await client.verify(key="v-" + reference, reference=reference, payment_method=pm)
        assert again == ok  # one operation per key
    assert await bank.card(number) == {"available": 1_000_000, "held": 0, "captured": 0, "refunded": 0}
    assert [(o["type"], o["status"], o["amount"]) for o in await bank.ops(reference)] == [
        ("verification", "succeeded", 0), ("verification", "failed", 0)]


async def test_two_named_banks_in_one_database_share_nothing(bank_db: str) -> None:
    from paygate.simbank.config import schema_for

    migrate.apply(bank_db, schema_for("gamma"), MIGRATIONS)
    number, reference = luhn_card(), ref()
    async with running_bank(bank_db) as default, running_bank(bank_db, name="gamma") as gamma:
        assert (await default.authorize(reference=reference, amount=300, number=number, exp=FUTURE)).status_code == 200
        assert (await default.card(number))["held"] == 300
        assert (await gamma.card(number))["held"] == 0
        assert await gamma.ops(reference) == []
        # the same reference is a fresh one at the other bank (no duplicate_reference across banks)
        resp = await gamma.authorize(reference=reference, amount=200, number=number, exp=FUTURE)
        assert resp.status_code == 200 and resp.json()["status"] == "succeeded"
        assert ((await default.card(number))["held"], (await gamma.card(number))["held"]) == (300, 200)
