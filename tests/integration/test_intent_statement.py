"""The card create's intent as one statement (store/intents.py, decision 0025): the key's row, the payment and
its operation are committed together or not at all, and a key taken by a concurrent duplicate fails the whole
statement on the key's primary key — which `idempotency.execute` answers as before (409 while the other holds
its lease)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest

from paygate.domain import idempotency as rules
from paygate.domain.ids import new_id
from paygate.errors import IdempotencyError
from paygate.services import idempotency, payments
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.services.payments import NewPayment
from paygate.store import bank_ops, intents
from paygate.store import idempotency as keys
from paygate.store import payments as payment_rows
from paygate.store.db import fetch_one, transaction

CARD: dict[str, Any] = {"type": "card", "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030,
                                                 "cvc": "123"}}
PATH = "/v1/payments"


def _body(amount: int = 1_000) -> dict[str, Any]:
    return {"amount": amount, "currency": "USD", "payment_method": CARD}


async def _execute(gw: Gateway, who: Principal, key: str, before_run: Any = None) -> tuple[Outcome, bool]:
    async def run(handle: KeyHandle) -> Outcome:
        if before_run is not None:
            await before_run()
        return await payments.create(gw, who, NewPayment(payment_method=CARD, amount=1_000, currency="USD"), handle)

    return await idempotency.execute(gw.pool, merchant_id=who.merchant_id, namespace="secret", key=key,
                                     method="POST", path=PATH, body=_body(), lock_s=30, fingerprint_key="fp-key",
                                     run=run)


async def _count(gw: Gateway, sql: str, *params: Any) -> int:
    async with gw.pool.connection() as conn:
        row = await fetch_one(conn, sql, params)
    assert row is not None
    return int(row["n"])


async def test_a_keyed_card_create_commits_its_key_and_replays(gw: Gateway, who: Principal) -> None:
    key = new_id("k")
    first, replayed = await _execute(gw, who, key)
    assert (first.status, replayed) == (201, False)
    payment = orjson.loads(first.body)
    async with gw.pool.connection() as conn:
        row = await keys.get(conn, who.merchant_id, key)
        op = await fetch_one(conn, "SELECT kind, status FROM bank_operations WHERE payment_id = %s", (payment["id"],))
    assert row is not None and (row["recovery_point"], row["response_status"]) == ("finished", 201)
    assert op == {"kind": "authorization", "status": "succeeded"}
    again, replayed = await _execute(gw, who, key)
    assert (again.status, again.body, replayed) == (201, first.body, True)


async def test_a_key_taken_meanwhile_fails_the_whole_statement(gw: Gateway, who: Principal) -> None:
    key = new_id("k")
    handle = KeyHandle(who.merchant_id, key, fresh=True, method="POST", path=PATH, fingerprint=b"fp", lock_s=30)
    async with transaction(gw.pool) as conn:  # another request's first phase, committed first
        await keys.insert(conn, merchant_id=who.merchant_id, key=key, method="POST", path=PATH, fingerprint=b"fp",
                          lock_s=30, recovery_point="payment_created", resource_id="pay_other")
    now, payment_id = utcnow(), new_id("pay")
    payment, _ = payment_rows.insert_write({
        "id": payment_id, "merchant_id": who.merchant_id, "status": "pending", "amount": 1_000, "currency": "USD",
        "capture_method": "automatic", "method_type": "card", "payment_method": {"type": "card"}, "metadata": {},
        "status_history": [], "created_at": now, "updated_at": now, "acquirer": "alpha"})
    operation = bank_ops.insert_write(id=new_id("bop"), merchant_id=who.merchant_id, payment_id=payment_id,
                                      kind="authorization", amount=1_000, acquirer="alpha",
                                      next_attempt_at=now + timedelta(seconds=5))
    checkpoint = handle.checkpoint_write("payment_created", payment_id)
    assert checkpoint is not None
    async with gw.pool.connection() as conn:
        with pytest.raises(psycopg.errors.UniqueViolation) as raised:
            await intents.commit(conn, [checkpoint, payment, operation])
    assert raised.value.diag.constraint_name == "idempotency_keys_pkey"
    assert await _count(gw, "SELECT count(*) AS n FROM payments WHERE id = %s", payment_id) == 0
    assert await _count(gw, "SELECT count(*) AS n FROM bank_operations WHERE payment_id = %s", payment_id) == 0
    # the handle is unchanged until the statement succeeds: still fresh, so nothing of the other's is released
    assert (handle.fresh, handle.resource_id) == (True, None)


async def test_a_duplicate_that_lost_the_race_gets_409_and_makes_nothing(gw: Gateway, who: Principal) -> None:
    key = new_id("k")
    fp = rules.fingerprint("POST", PATH, _body(), "fp-key")

    async def the_other_commits_first() -> None:
        async with transaction(gw.pool) as conn:
            await keys.insert(conn, merchant_id=who.merchant_id, key=key, method="POST", path=PATH, fingerprint=fp,
                              lock_s=30, recovery_point="payment_created", resource_id="pay_other")

    taken = False

    async def once() -> None:
        nonlocal taken
        if not taken:
            taken = True
            await the_other_commits_first()

    with pytest.raises(IdempotencyError) as raised:
        await _execute(gw, who, key, before_run=once)
    assert (raised.value.status, raised.value.code) == (409, "idempotency_key_in_use")
    assert await _count(gw, "SELECT count(*) AS n FROM payments WHERE merchant_id = %s", who.merchant_id) == 0
    async with gw.pool.connection() as conn:
        row = await keys.get(conn, who.merchant_id, key)
    assert row is not None and row["resource_id"] == "pay_other" and row["locked_until"] is not None
