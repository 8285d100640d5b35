"""The janitor: finishes every bank operation left in flight, whatever stopped it.

Due intents are claimed with SKIP LOCKED and leased by pushing `next_attempt_at` forward (with
exponential backoff and jitter), so several workers never work one operation at once and a killed worker's
claims come back by themselves. The bank is asked again with the operation's own idempotency key: it
either replays what it did or does it now; an authorization (whose card we never kept) is resolved by the
bank's inquiry, which also fences off a late arrival of the original request.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from paygate import tracing
from paygate.acquirers.base import AcquirerResult, OpKind
from paygate.domain.retry import backoff
from paygate.services import authentication
from paygate.services.acquiring import ask
from paygate.services.gateway import Gateway, utcnow
from paygate.services.settle import settle
from paygate.store import bank_ops
from paygate.store.db import Row, pipelined
from paygate.worker.metrics import acquirer_answered

log = structlog.get_logger("paygate.recovery")

BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 300.0


async def _ask_bank(gw: Gateway, op: Row) -> AcquirerResult:
    """The acquirer the operation went to finishes it (its `resolve`: an inquiry, or the same call again)."""
    bank = gw.acquirer(op["acquirer"])
    return await ask(bank.resolve(kind=OpKind(op["kind"]), key=op["id"], reference=op["payment_id"],
                                  amount=op["amount"]))


async def claim(gw: Gateway, limit: int) -> list[Row]:
    async with pipelined(gw.pool) as conn:
        now = utcnow()
        ops = await bank_ops.claim_due(conn, now, limit)
        for op in ops:
            # The lease doubles as the backoff: at least the bank's worst-case answer time.
            delay = max(gw.settings.bank_timeout_s * gw.settings.bank_attempts + 5.0,
                        backoff(op["attempts"], BACKOFF_BASE_S, BACKOFF_CAP_S))
            await bank_ops.reschedule(conn, op["id"], now + timedelta(seconds=delay))
    return ops


async def recover_once(gw: Gateway, limit: int = 50) -> int:
    """One pass; returns how many operations reached a final outcome."""
    settled = 0
    for op in await claim(gw, limit):
        with tracing.span("recovery.operation", **{"paygate.operation_id": op["id"], "paygate.kind": op["kind"]}):
            if op["kind"] == "authentication" or op.get("authentication_ref") is not None:
                # §15: a challenge is finished by applying its result, and the authorization it opened (no card
                # in it) by sending it again with its key — services/authentication.py, not `settle`
                try:
                    if not await authentication.recover(gw, op):
                        continue
                except Exception as exc:
                    log.error("recovery_bank_error", op=op["id"], error=type(exc).__name__)
                    continue
                settled += 1
                log.info("recovered", op=op["id"], kind=op["kind"], payment=op["payment_id"], acquirer=op["acquirer"])
                continue
            try:
                result = await _ask_bank(gw, op)
            except Exception as exc:  # a protocol error: keep the intent, look again after the backoff
                log.error("recovery_bank_error", op=op["id"], error=type(exc).__name__)
                acquirer_answered(op["acquirer"], True)  # it answered, if not as expected
                continue
            acquirer_answered(op["acquirer"], result.outcome != "unknown")
            if result.outcome not in ("succeeded", "failed"):
                continue
            async with pipelined(gw.pool) as conn:
                await settle(conn, gw, op["id"], result.outcome, result.failure_code, utcnow(), result.operation_id,
                             result.capture_id)
        settled += 1
        log.info("recovered", op=op["id"], kind=op["kind"], payment=op["payment_id"], acquirer=op["acquirer"],
                 outcome=result.outcome)
    return settled
