"""Bank callbacks against the real `paygate api` process (API.md §12): forged signatures, concurrent duplicates,
a reversed pair, the database going away mid-callback (through a TCP proxy we cut, never by touching the
shared server), and a callback that never arrives (the recovery worker finishes the payment)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import MakeDatabase
from tests.e2e.procs import MakeStack, Proc, Stack
from tests.e2e.tcpproxy import TcpProxy
from tests.e2e.test_upi_support import SECRET, Db, Shop, bank_event, signed
from tests.polling import poll

# The bank never settles UPI by itself within a test: the only callbacks are the ones the test sends.
# a column of the bank's outbox row for a payment's callback
_CALLBACK_OF = "SELECT {} FROM bank.callbacks WHERE convert_from(body, 'UTF8')::jsonb #>> '{{data,reference}}' = %s"
QUIET_BANK = {"PAYGATE_BANK_WEBHOOK_SECRET": SECRET, "PAYGATE_BANK_UPI_DELAY_MS": "600000-600000"}


@pytest.fixture
def quiet(make_stack: MakeStack) -> Iterator[Shop]:
    shop = Shop.create(make_stack(worker=False, api_workers=2, **QUIET_BANK))
    yield shop
    shop.close()


def _post(stack: Stack, event: dict[str, Any], **kw: Any) -> httpx.Response:
    body, headers = signed(event, **kw)
    return httpx.post(f"{stack.api_url}/v1/bank/events", content=body, headers=headers, timeout=30)


def test_a_forged_callback_is_401_and_records_nothing(quiet: Shop) -> None:
    db = Db(quiet.stack.database_url)
    p = quiet.upi()
    forged_secret = "whsec_Zm9yZ2VkLWJ5LWFuLWF0dGFja2VyLTAxMjM0NTY3"
    attempts = [_post(quiet.stack, bank_event(p["id"]), secret=forged_secret),
                httpx.post(f"{quiet.stack.api_url}/v1/bank/events", json=bank_event(p["id"]), timeout=30)]
    for resp in attempts:
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["type"] == "authentication_error"
        assert resp.headers["request-id"]
    assert db.value("SELECT count(*) FROM bank_events") == 0
    assert quiet.payment(p["id"])["status"] == "pending"
    assert db.event_types(p["id"]) == ["payment.pending"]


async def test_twenty_identical_callbacks_at_once_change_the_payment_once(quiet: Shop) -> None:
    db = Db(quiet.stack.database_url)
    p = quiet.upi(amount=2_500)
    event = bank_event(p["id"])
    body, headers = signed(event)
    async with httpx.AsyncClient(base_url=quiet.stack.api_url, timeout=30,
                                 limits=httpx.Limits(max_connections=20)) as http:
        answers = await asyncio.gather(*(http.post("/v1/bank/events", content=body, headers=headers)
                                         for _ in range(20)))
    assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers]
    assert sorted(r.json()["duplicate"] for r in answers) == [False] + [True] * 19
    assert {r.json()["outcome"] for r in answers} == {"applied"}
    done = quiet.payment(p["id"])
    assert (done["status"], done["amount_captured"]) == ("captured", 2_500)
    assert [h["status"] for h in done["status_history"]] == ["pending", "captured"]
    assert db.event_types(p["id"]) == ["payment.pending", "payment.captured"]
    assert db.journals(p["id"]) == 1
    assert db.all("SELECT id, outcome, duplicates FROM bank_events") == [
        {"id": event["id"], "outcome": "applied", "duplicates": 19}]


def test_failed_after_succeeded_leaves_the_payment_captured(quiet: Shop) -> None:
    db = Db(quiet.stack.database_url)
    p = quiet.upi()
    succeeded, failed = bank_event(p["id"]), bank_event(p["id"], ok=False)
    assert _post(quiet.stack, succeeded).json()["outcome"] == "applied"
    resp = _post(quiet.stack, failed)
    assert resp.status_code == 200 and resp.json() == {
        "object": "bank_event_receipt", "id": failed["id"], "outcome": "ignored", "duplicate": False}
    done = quiet.payment(p["id"])
    assert (done["status"], done["failure_code"]) == ("captured", None)
    assert db.event_types(p["id"]) == ["payment.pending", "payment.captured"]
    assert db.journals(p["id"]) == 1
    outcomes = {r["id"]: r["outcome"] for r in db.all("SELECT id, outcome FROM bank_events")}
    assert outcomes == {succeeded["id"]: "applied", failed["id"]: "ignored"}


@pytest.fixture
def proxied(make_stack: MakeStack, make_database: MakeDatabase) -> Iterator[tuple[Callable[[str], Stack],
                                                                                  TcpProxy, str]]:
    """(start a stack whose API and worker reach the database only through the proxy, the proxy, the
    direct database URL). The bank keeps its own direct connection."""
    direct = make_database()
    parts = urlsplit(direct)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    via_proxy = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port or 5432}", f":{proxy.port}")))
    assert via_proxy != direct

    def start(upi_delay_ms: str) -> Stack:
        return make_stack(database_url=via_proxy, worker=False, PAYGATE_BANK_DATABASE_URL=direct,
                          PAYGATE_BANK_WEBHOOK_SECRET=SECRET, PAYGATE_BANK_UPI_DELAY_MS=upi_delay_ms)

    try:
        yield start, proxy, direct
    finally:
        proxy.close()


def test_database_down_during_a_callback_is_503_then_applied_once_on_retry(
    proxied: tuple[Callable[[str], Stack], TcpProxy, str],
) -> None:
    start, proxy, direct = proxied
    shop = Shop.create(start("600000-600000"))
    db = Db(direct)
    try:
        p = shop.upi()
        event = bank_event(p["id"])
        proxy.cut()
        for _ in range(2):  # a pooled connection that just died, then no connection at all
            resp = _post(shop.stack, event)
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["type"] == "api_error" and resp.headers["retry-after"]
        assert db.value("SELECT count(*) FROM bank_events") == 0
        assert db.value("SELECT status FROM payments WHERE id = %s", p["id"]) == "pending"

        proxy.restore()
        first = poll(lambda: (r := _post(shop.stack, event)).status_code == 200 and r, within_s=30)
        answers = [first, _post(shop.stack, event)]
        assert [(r.json()["outcome"], r.json()["duplicate"]) for r in answers] == [("applied", False),
                                                                                   ("applied", True)]
        done = shop.payment(p["id"])
        assert [h["status"] for h in done["status_history"]] == ["pending", "captured"]
        assert db.event_types(p["id"]) == ["payment.pending", "payment.captured"]
        assert db.journals(p["id"]) == 1
    finally:
        shop.close()


def test_the_bank_retries_a_callback_refused_with_503_and_it_applies_once(
    proxied: tuple[Callable[[str], Stack], TcpProxy, str],
) -> None:
    start, proxy, direct = proxied
    shop = Shop.create(start("1500-1500"))
    db = Db(direct)
    try:
        p = shop.upi()
        proxy.cut()  # before the bank settles and calls back
        last_error = poll(lambda: db.value(_CALLBACK_OF.format("last_error"), p["id"]), within_s=20)
        assert last_error == "HTTP 503"
        assert db.value("SELECT count(*) FROM bank_events") == 0
        proxy.restore()
        poll(lambda: db.value("SELECT status FROM payments WHERE id = %s", p["id"]) == "captured", within_s=30)
        poll(lambda: db.value("SELECT bool_and(delivered_at IS NOT NULL) FROM bank.callbacks"), within_s=30)
        attempts = db.value(_CALLBACK_OF.format("attempts"), p["id"])
        assert attempts >= 2
        assert db.all("SELECT outcome, duplicates FROM bank_events WHERE reference = %s", p["id"]) == [
            {"outcome": "applied", "duplicates": 0}]
        assert db.event_types(p["id"]) == ["payment.pending", "payment.captured"]
        assert db.journals(p["id"]) == 1
    finally:
        shop.close()


@pytest.mark.slow
def test_a_callback_that_never_arrives_is_replaced_by_the_recovery_worker(make_stack: MakeStack) -> None:
    """The API is down while the bank settles and calls back; `paygate worker` asks the bank after its grace
    period (20 s after the payment was created) and captures the payment. The bank's callback, delivered
    once the API is back, then changes nothing."""
    stack = make_stack(worker=False, PAYGATE_BANK_UPI_DELAY_MS="200-300")
    shop = Shop.create(stack)
    db = Db(stack.database_url)
    try:
        p = shop.upi(amount=3_300)
        stack.procs["api"].stop()
        poll(lambda: ("capture", "succeeded") in [
            (op["type"], op["status"]) for op in httpx.get(f"{stack.bank_url}/v1/operations",
                                                          params={"reference": p["id"]}, timeout=10).json()["data"]])
        poll(lambda: db.value("SELECT max(attempts) FROM bank.callbacks"), within_s=10)  # it tried, and failed
        assert db.value("SELECT status FROM payments WHERE id = %s", p["id"]) == "pending"

        worker = Proc("worker", ["worker"], stack.env, None, log_dir=stack.workdir)
        stack.procs["worker"] = worker
        worker.start()
        poll(lambda: db.value("SELECT status FROM payments WHERE id = %s", p["id"]) == "captured", within_s=60)
        assert db.value("SELECT count(*) FROM bank_events") == 0  # the worker did it, not a callback
        assert db.event_types(p["id"]) == ["payment.pending", "payment.captured"]
        assert db.journals(p["id"]) == 1

        stack.procs["api"].start()
        row = poll(lambda: db.one("SELECT outcome, detail FROM bank_events WHERE reference = %s", p["id"]),
                   within_s=90)
        assert row is not None and row["outcome"] == "redundant"
        done = shop.payment(p["id"])
        assert [h["status"] for h in done["status_history"]] == ["pending", "captured"]
        assert done["amount_captured"] == 3_300
        assert db.journals(p["id"]) == 1
    finally:
        shop.close()
