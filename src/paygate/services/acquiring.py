"""Which acquirer a payment goes to, and the one adapter between the acquirer seam and today's use cases.

`candidates_for` is the single place that decides where an authorization is sent; routing rules and
failover (API.md §14) replace it. Every later operation of a payment (capture, void, refund, expiry,
recovery, callbacks) goes to the acquirer recorded on the payment and its bank operations — never to
whatever `candidates_for` would answer now.
"""

from __future__ import annotations

from collections.abc import Awaitable

import structlog

from paygate.acquirers.base import UNKNOWN, AcquirerResult, Unavailable
from paygate.services.gateway import Gateway
from paygate.store.db import Row

log = structlog.get_logger("paygate.acquiring")


def candidates_for(gw: Gateway, payment: Row) -> list[str]:
    """The acquirers to try for `payment`, in order. Today: the first configured one."""
    return [next(iter(gw.acquirers))]


async def ask(call: Awaitable[AcquirerResult]) -> AcquirerResult:
    """The acquirer's answer, or UNKNOWN when there was none (NotSent or OutcomeUnknown): the operation stays
    in flight at that acquirer and recovery finishes it there. (Failover distinguishes the two instead.)"""
    try:
        return await call
    except Unavailable as exc:
        log.warning("acquirer_no_answer", error=type(exc).__name__, detail=str(exc))
        return UNKNOWN
