"""The adapter between the acquirer seam and the use cases that stay put at one acquirer.

Where an authorization goes is decided by `services.routing.plan` and failover (services/authorize.py,
API.md §14). Every later operation of a payment (capture, void, refund, expiry, recovery, callbacks) goes
to the acquirer recorded on the payment and its bank operations — never to whatever routing answers now.
"""

from __future__ import annotations

from collections.abc import Awaitable

import structlog

from paygate.acquirers.base import UNKNOWN, AcquirerResult, Unavailable

log = structlog.get_logger("paygate.acquiring")


async def ask(call: Awaitable[AcquirerResult]) -> AcquirerResult:
    """The acquirer's answer, or UNKNOWN when there was none (NotSent or OutcomeUnknown): the operation stays
    in flight at that acquirer and recovery finishes it there. (Failover distinguishes the two instead.)"""
    try:
        return await call
    except Unavailable as exc:
        log.warning("acquirer_no_answer", error=type(exc).__name__, detail=str(exc))
        return UNKNOWN
