"""Authorizations never captured expire: the hold is voided at the bank and the payment becomes `expired`.

The expiry is written ahead like any other operation (`voiding` + an `expiry` intent due now), so the
recovery loop performs the bank call and a crash anywhere loses nothing.
"""

from __future__ import annotations

from paygate.domain.ids import new_id
from paygate.domain.payments import Status
from paygate.services.gateway import Gateway, utcnow
from paygate.services.settle import move
from paygate.store import bank_ops, payments
from paygate.store.db import pipelined


async def expire_once(gw: Gateway, limit: int = 100) -> int:
    async with pipelined(gw.pool) as conn:
        now = utcnow()
        due = await payments.expired_authorizations(conn, now, limit)
        for row in due:
            p = await payments.lock(conn, row["id"])
            assert p is not None
            await move(conn, p, Status.VOIDING, now)
            await bank_ops.insert(conn, id=new_id("bop"), merchant_id=p["merchant_id"], payment_id=p["id"],
                                  kind="expiry", amount=p["amount"], acquirer=p["acquirer"], next_attempt_at=now)
    return len(due)
