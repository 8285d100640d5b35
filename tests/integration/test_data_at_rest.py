"""API.md §19 "Data at rest" over a real PostgreSQL: what the idempotency table keeps of a card, and the
session timeouts that keep a request from waiting on the database for ever."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from paygate.api.app import create_app
from paygate.config import Settings
from paygate.domain import idempotency
from paygate.services import merchants
from paygate.services.gateway import Gateway
from paygate.simbank import cards
from paygate.store import db
from paygate.store.db import Conn, make_pool, session_options
from tests.integration.test_orders_support import SECRET, Api, api

__all__ = ["api"]  # the fixture, imported so that pytest finds it here

NUMBER, CVC = "4111111111111111", "123"


def _payment_body(cvc: str) -> dict[str, Any]:
    return {"amount": 2_500, "currency": "USD", "payment_method": {"type": "card", "card": {
        "number": NUMBER, "exp_month": 12, "exp_year": 2030, "cvc": cvc}}}


async def test_the_stored_fingerprint_does_not_depend_on_the_cvc(api: Api) -> None:
    m = await api.merchant()
    headers = {**m.sk, "Idempotency-Key": "order-1-attempt-1"}
    first = await api.http.post("/v1/payments", json=_payment_body(CVC), headers=headers)
    assert first.status_code == 201, first.text
    row = await api.one("SELECT * FROM idempotency_keys WHERE merchant_id = %s", m.merchant_id)
    assert row is not None
    stored = bytes(row["fingerprint"])

    # Only the CVC differs: the same request (replayed), and the row is exactly as it was.
    again = await api.http.post("/v1/payments", json=_payment_body("999"), headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    after = await api.one("SELECT * FROM idempotency_keys WHERE merchant_id = %s", m.merchant_id)
    assert after == row

    # Nothing in the row is computable from the CVC: the fingerprint is a function of a body that has
    # no CVC (and no number, only the card's fingerprint), and no column holds either value.
    key = api.gw.settings.fingerprint_key
    no_cvc = copy.deepcopy(_payment_body(CVC))
    del no_cvc["payment_method"]["card"]["cvc"]
    assert stored == idempotency.fingerprint("POST", "/v1/payments", no_cvc, key)
    raw = orjson.dumps(_payment_body(CVC), option=orjson.OPT_SORT_KEYS)
    assert stored != hmac.new(key.encode(), b"POST /v1/payments\n" + raw, hashlib.sha256).digest()  # the old one
    dumped = repr(row).encode() + bytes(row["response_body"])
    assert NUMBER.encode() not in dumped and b'"cvc"' not in dumped

    # A different card under the same key is still a different request.
    other = _payment_body(CVC)
    other["payment_method"]["card"]["number"] = "4242424242424242"
    reused = await api.http.post("/v1/payments", json=other, headers=headers)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_the_simulator_keys_its_card_hashes(api: Api) -> None:
    m = await api.merchant()
    paid = await api.http.post("/v1/payments", json=_payment_body(CVC), headers=m.sk)
    assert paid.status_code == 201, paid.text
    stored = {bytes(r["card_hash"]) for r in await api.all("SELECT card_hash FROM bank.accounts")}
    assert stored == {cards.card_hash(NUMBER, cards.card_key(SECRET))}
    assert hashlib.sha256(NUMBER.encode()).digest() not in stored  # the unkeyed hash a dump could brute-force
    assert cards.card_hash(NUMBER, cards.card_key("another secret")) not in stored


async def test_a_dump_of_every_table_holds_no_card_number(api: Api) -> None:
    m = await api.merchant()
    for cvc, key in (("123", "k-1"), ("999", "k-1"), ("123", "k-2")):
        resp = await api.http.post("/v1/payments", json=_payment_body(cvc),
                                   headers={**m.sk, "Idempotency-Key": key})
        assert resp.status_code == 201, resp.text
    tables = await api.all("SELECT table_schema AS s, table_name AS t FROM information_schema.tables "
                           "WHERE table_schema IN ('public', 'bank') AND table_type = 'BASE TABLE'")
    assert {"payments", "idempotency_keys", "operations", "accounts"} <= {t["t"] for t in tables}
    for t in tables:
        # every row as text, bytea columns as hex and as escaped bytes: as pg_dump would show them
        rows = await api.all(f'SELECT x::text AS row FROM "{t["s"]}"."{t["t"]}" x')
        dumped = "\n".join(r["row"] for r in rows)
        assert NUMBER not in dumped and NUMBER.encode().hex() not in dumped, (t, dumped[:200])


def test_session_options_keep_the_conninfo_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert session_options("dbname=x", statement_timeout_ms=5000, lock_timeout_ms=2000) == \
        "-c statement_timeout=5000 -c lock_timeout=2000"
    assert session_options("postgresql:///x?options=-c%20search_path%3Dbank", statement_timeout_ms=0,
                           lock_timeout_ms=1) == "-c search_path=bank -c statement_timeout=0 -c lock_timeout=1"
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=8MB")
    assert session_options("dbname=x", statement_timeout_ms=1, lock_timeout_ms=2) == \
        "-c work_mem=8MB -c statement_timeout=1 -c lock_timeout=2"


async def test_pooled_sessions_carry_the_timeouts(database_url: str) -> None:
    pool = make_pool(database_url, min_size=1, max_size=1, statement_timeout_ms=4321, lock_timeout_ms=1234)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(b"SELECT current_setting('statement_timeout') AS s,"
                                     b" current_setting('lock_timeout') AS l")
            assert await cur.fetchone() == {"s": "4321ms", "l": "1234ms"}
            with pytest.raises(psycopg.errors.QueryCanceled):
                await conn.execute(b"SELECT pg_sleep(10)")
    finally:
        await pool.close()


async def _backend_pid(pool: AsyncConnectionPool[Conn]) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(b"SELECT pg_backend_pid() AS pid")
        row = await cur.fetchone()
        assert row is not None
        return int(row["pid"])


async def _terminate(database_url: str, pid: int) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(200):
            cur = await admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
            if await cur.fetchone() is None:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} is still there")


async def test_an_idle_connection_that_died_is_replaced_not_handed_out(
    database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = make_pool(database_url, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        monkeypatch.setattr(db, "CHECK_AFTER_IDLE_S", 0.0)  # every hand-out counts as after an idle spell
        first = await _backend_pid(pool)
        await _terminate(database_url, first)  # as a failover or an idle reap would
        replaced = await _backend_pid(pool)
        assert replaced != first

        monkeypatch.setattr(db, "CHECK_AFTER_IDLE_S", 3600.0)  # recently used: not checked, so...
        await _terminate(database_url, replaced)
        with pytest.raises(psycopg.OperationalError):  # ...the dead one is handed out (the check is what helps)
            await _backend_pid(pool)
    finally:
        await pool.close()


LOCK_TIMEOUT_MS = 300


@pytest.fixture
async def gateway_http(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    settings = Settings(database_url=database_url, public_url="http://paygate.test", bank_url="http://127.0.0.1:9",
                        db_lock_timeout_ms=LOCK_TIMEOUT_MS, log_level="warning")
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://paygate.test", timeout=30) as http:
        yield http, app.state.context.gateway


async def test_a_lock_held_elsewhere_is_a_503_with_retry_after_not_a_hang(
    gateway_http: tuple[httpx.AsyncClient, Gateway], database_url: str,
) -> None:
    http, gw = gateway_http
    made = await merchants.create(gw.pool, name="Shop", email="locks@example.com", password="a-long-password")
    auth = {"Authorization": f"Bearer {made.secret_key}"}
    order = await http.post("/v1/orders", json={"amount": 100, "currency": "INR"}, headers=auth)
    assert order.status_code == 201, order.text
    path = f"/v1/orders/{order.json()['id']}"

    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # held until the rollback below
        started = time.monotonic()
        blocked = await asyncio.wait_for(http.get(path, headers=auth), timeout=10)
        waited = time.monotonic() - started
        assert blocked.status_code == 503, blocked.text
        assert blocked.headers["retry-after"] == "1"
        assert blocked.json()["error"]["type"] == "api_error"
        assert LOCK_TIMEOUT_MS / 1000 <= waited < 5  # it waited for the lock, then gave up: no statement timeout
        await holder.rollback()

    free = await http.get(path, headers=auth)
    assert free.status_code == 200 and free.json()["id"] == order.json()["id"]
