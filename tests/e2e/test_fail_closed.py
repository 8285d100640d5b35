"""Fail closed (issue 4): with the database away, writes get 503 + Retry-After, /readyz says so, nothing
is half-done; when it returns, paygate recovers without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from tests.conftest import MakeDatabase
from tests.e2e.client import card
from tests.e2e.procs import MakeStack, Stack
from tests.e2e.tcpproxy import TcpProxy


@pytest.fixture
def outage(make_stack: MakeStack, make_database: MakeDatabase) -> Iterator[tuple[Stack, TcpProxy, str]]:
    direct = make_database()
    parts = urlsplit(direct)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    stack = make_stack(database_url=via_proxy, PAYGATE_BANK_DATABASE_URL=direct)
    try:
        yield stack, proxy, direct
    finally:
        proxy.restore()
        proxy.close()


def test_database_outage_is_503_and_recovers_without_restart(outage: tuple[Stack, TcpProxy, str]) -> None:
    stack, proxy, direct = outage
    m = stack.merchant()
    auth = {"Authorization": f"Bearer {m['secret_key']}"}
    body = {"amount": 1500, "currency": "EUR", "payment_method": card()}
    with httpx.Client(base_url=stack.api_url, headers=auth, timeout=30) as http:
        assert http.post("/v1/payments", json=body).status_code == 201  # warm: the key is cached now
        proxy.cut()
        r = http.post("/v1/payments", json=body, headers={"Idempotency-Key": "during-outage"})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["type"] == "api_error" and int(r.headers["retry-after"]) >= 1
        assert "psycopg" not in r.text and "Traceback" not in r.text
        assert http.get("/v1/payments").status_code == 503
        ready = http.get("/readyz")
        assert ready.status_code == 503 and "retry-after" in ready.headers
        assert http.get("/healthz").status_code == 200
        with psycopg.connect(direct) as conn:  # nothing half-done
            assert conn.execute("SELECT count(*) FROM payments").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (0,)
        proxy.restore()
        deadline_ok = False
        for _ in range(50):
            if http.get("/readyz").status_code == 200:
                deadline_ok = True
                break
            http.get("/healthz")
        assert deadline_ok
        again = http.post("/v1/payments", json=body, headers={"Idempotency-Key": "during-outage"})
        assert again.status_code == 201 and again.json()["status"] == "captured"
        assert "idempotent-replayed" not in again.headers  # the 503 was not stored: it ran afresh
        assert len(http.get("/v1/payments").json()["data"]) == 2
    assert stack.procs["api"].running and stack.procs["worker"].running
