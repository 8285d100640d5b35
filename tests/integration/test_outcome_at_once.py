"""The create's outcome in one statement (docs/decisions/0026) writes what the ordinary path writes: the same
payment, operation, attempt, event (with its deliveries), journal and stored answer. The ordinary path is
taken for real here — a breaker that is not plainly up needs its locked write (store/acquirer_health.py), so
the function answers 'stale' and `_conclude` runs as before — and the two results are compared."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from paygate.acquirers.base import OpKind
from paygate.acquirers.memory import Behaviour, MemoryAcquirer
from paygate.services import idempotency, payments, webhook_endpoints
from paygate.services.gateway import Gateway, Outcome, Principal
from paygate.services.payments import NewPayment
from paygate.store import outcomes
from paygate.store.bank_ops import Resolution
from paygate.store.db import Row, fetch_all, fetch_one

CARD: dict[str, Any] = {"type": "card", "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030,
                                                 "cvc": "123"}}
_VOLATILE = re.compile(r'"(?:pay|bop|evt|jrn|led|wd|mop|mcap)_[A-Za-z0-9]+"|"\d{4}-\d\d-\d\dT[0-9:.]+Z"')


def _same(value: Any) -> str:
    """A value with its ids and timestamps blanked: what two payments' records must share."""
    return _VOLATILE.sub('"*"', orjson.dumps(value, default=str).decode())


async def _create(gw: Gateway, who: Principal, capture_method: str, key: str) -> tuple[Outcome, Outcome]:
    async def run(handle: idempotency.KeyHandle) -> Outcome:
        return await payments.create(gw, who, NewPayment(payment_method=CARD, amount=1_000, currency="USD",
                                                         capture_method=capture_method), handle)

    first, _ = await idempotency.execute(gw.pool, merchant_id=who.merchant_id, namespace="secret", key=key,
                                         method="POST", path="/v1/payments", body={"k": key}, lock_s=60,
                                         fingerprint_key="fp", run=run)
    replay, replayed = await idempotency.execute(gw.pool, merchant_id=who.merchant_id, namespace="secret", key=key,
                                                 method="POST", path="/v1/payments", body={"k": key}, lock_s=60,
                                                 fingerprint_key="fp", run=run)
    assert replayed
    return first, replay


async def _records(gw: Gateway, payment_id: str) -> dict[str, Any]:
    async with gw.pool.connection() as conn:
        one = await fetch_one(conn, "SELECT * FROM payments WHERE id = %s", (payment_id,))
        assert one is not None
        q: dict[str, str] = {
            "ops": "SELECT kind, status, acquirer, acquirer_reference, failure_code, (resolved_at IS NOT NULL) AS"
                   " resolved FROM bank_operations WHERE payment_id = %s",
            "attempts": "SELECT acquirer, result, failure_code FROM acquirer_attempts WHERE payment_id = %s",
            "events": "SELECT type, data FROM events WHERE object_id = %s ORDER BY id",
            "deliveries": "SELECT d.event_type, d.status FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
                          " WHERE e.object_id = %s",
            "journals": "SELECT kind, currency, refund_id FROM ledger_journals WHERE payment_id = %s",
            "entries": "SELECT account, direction, amount, currency FROM ledger_entries WHERE payment_id = %s"
                       " ORDER BY account, direction",
        }
        out: dict[str, Any] = {name: await fetch_all(conn, sql, (payment_id,)) for name, sql in q.items()}
    expires = one["authorization_expires_at"]  # made of the payment's own creation time: compared as an offset
    out["expires_after_s"] = (expires - one["created_at"]).total_seconds() if expires is not None else None
    out["payment"] = {k: v for k, v in one.items() if k not in ("created_at", "updated_at", "authorization_expires_at")}
    return out


async def _not_plainly_up(gw: Gateway, acquirer: str) -> None:
    async with gw.pool.connection() as conn:
        await conn.execute("INSERT INTO acquirer_health (acquirer, consecutive_failures) VALUES (%s, 1) "
                           "ON CONFLICT (acquirer) DO UPDATE SET consecutive_failures = 1", (acquirer,))


@pytest.mark.parametrize(("capture_method", "behaviour"), [
    ("automatic", Behaviour.APPROVE), ("manual", Behaviour.APPROVE), ("automatic", Behaviour.DECLINE)])
async def test_one_statement_writes_what_the_ordinary_path_writes(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer, capture_method: str, behaviour: Behaviour,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await webhook_endpoints.create_endpoint(gw, who, url="https://example.com/hook", enabled_events=["*"],
                                   description=None, key=idempotency.KeyHandle(who.merchant_id, None))
    answers: list[bool] = []  # what the one statement answered: both runs must ask it, only the first may apply
    conclude = outcomes.conclude_authorization

    async def spied(*args: Any, **kwargs: Any) -> bool:
        answers.append(await conclude(*args, **kwargs))
        return answers[-1]

    monkeypatch.setattr(outcomes, "conclude_authorization", spied)
    alpha.script(OpKind.AUTHORIZATION, behaviour)
    fast, fast_replay = await _create(gw, who, capture_method, "k-fast")
    assert answers == [True]  # the fast run did take the one statement
    alpha.script(OpKind.AUTHORIZATION, behaviour)
    await _not_plainly_up(gw, "alpha")
    slow, slow_replay = await _create(gw, who, capture_method, "k-slow")
    assert answers == [True, False]  # and the slow one was refused it: the ordinary path wrote
    async with gw.pool.connection() as conn:  # the ordinary path did take the breaker's write
        breaker = await fetch_one(conn, "SELECT consecutive_failures FROM acquirer_health WHERE acquirer = 'alpha'")
    assert breaker == {"consecutive_failures": 0}

    assert (fast.status, fast_replay.body) == (slow.status, fast.body) and slow_replay.body == slow.body
    assert _same(orjson.loads(fast.body)) == _same(orjson.loads(slow.body))
    body = orjson.loads(fast.body)
    answered = body.get("error", {}).get("payment", body)
    fast_rows = await _records(gw, answered["id"])
    slow_body = orjson.loads(slow.body)
    slow_rows = await _records(gw, slow_body.get("error", {}).get("payment", slow_body)["id"])
    assert _same(fast_rows) == _same(slow_rows)
    [event] = fast_rows["events"]
    assert event["data"] == answered  # the event is of the row as stored and answered
    assert len(fast_rows["deliveries"]) == 1
    assert bool(fast_rows["entries"]) == (answered["status"] == "captured")  # a journal for money taken only


async def test_a_payment_moved_meanwhile_is_stale_and_nothing_is_written(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    alpha.script(OpKind.AUTHORIZATION, Behaviour.APPROVE)
    out = await payments.create(gw, who, NewPayment(payment_method=CARD, amount=1_000, currency="USD"),
                                idempotency.KeyHandle(who.merchant_id, None))
    p = orjson.loads(out.body)
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT * FROM payments WHERE id = %s", (p["id"],))
        op = await fetch_one(conn, "SELECT * FROM bank_operations WHERE payment_id = %s", (p["id"],))
        assert row is not None and op is not None
        # as if the request had committed it pending, while its operation is now settled: stale, untouched
        was: Row = {**row, "status": "pending"}
        done = await outcomes.conclude_authorization(
            conn, was=was, acquirer="alpha", result="succeeded", attempt_code=None, now=row["updated_at"],
            resolution=Resolution(op["id"], "succeeded", None, row["updated_at"]), row=row,
            event_type="payment.captured", event_data={}, journal=[], key=None, response=(201, b"{}"))
        assert not done
        after = await fetch_one(conn, "SELECT * FROM payments WHERE id = %s", (p["id"],))
        n = await fetch_one(conn, "SELECT count(*) AS n FROM acquirer_attempts WHERE payment_id = %s", (p["id"],))
    assert after == row and n == {"n": 1}
