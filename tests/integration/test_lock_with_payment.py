"""store/bank_ops.py `lock_with_payment`: a request that waited for the payment's lock sees the operation as
the lock's holder left it. (One join locking only the payment returned the operation as it was before the
wait: a request queued behind another's failover saw the old attempt still pending and failed over again.)"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from paygate.acquirers.memory import MemoryAcquirer
from paygate.services import idempotency, payments
from paygate.services.gateway import Gateway, Principal, utcnow
from paygate.services.payments import NewPayment
from paygate.store import bank_ops
from paygate.store.db import fetch_one
from tests.polling import eventually

CARD: dict[str, Any] = {"type": "card", "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030,
                                                 "cvc": "123"}}


async def test_a_waiter_sees_the_operation_as_the_lock_holder_committed_it(
        gw: Gateway, who: Principal, alpha: MemoryAcquirer) -> None:
    out = await payments.create(gw, who, NewPayment(payment_method=CARD, amount=1_000, currency="USD",
                                                    capture_method="manual"),
                                idempotency.KeyHandle(who.merchant_id, None))
    payment_id = orjson.loads(out.body)["id"]
    op_id = "bop_waiter_test"
    async with gw.pool.connection() as conn:
        await bank_ops.insert(conn, id=op_id, merchant_id=who.merchant_id, payment_id=payment_id, kind="capture",
                              amount=1_000, acquirer="alpha", next_attempt_at=utcnow())

    async with gw.pool.connection() as holder, gw.pool.connection() as waiter:
        waiter_pid = waiter.info.backend_pid
        async with holder.transaction():
            held, op = await bank_ops.lock_with_payment(holder, op_id)
            assert held["id"] == payment_id and op["status"] == "pending"

            async def wait_for_lock() -> tuple[dict[str, Any], dict[str, Any]]:
                async with waiter.transaction():
                    return await bank_ops.lock_with_payment(waiter, op_id)

            queued = asyncio.create_task(wait_for_lock())

            async def waiting() -> bool | None:
                async with gw.pool.connection() as conn:
                    row = await fetch_one(conn, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                          (waiter_pid,))
                return True if row is not None and row["wait_event_type"] == "Lock" else None

            await eventually(waiting)  # the waiter is queued on the payment's lock
            await bank_ops.resolve(holder, op_id, "succeeded", None, utcnow(), "ref_1")
        _, seen = await queued
    assert seen["status"] == "succeeded"  # not the `pending` of before its wait
