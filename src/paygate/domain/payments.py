"""The payment state machine: a pure table of allowed moves, plus the amount rules around it.

Every transition in the system goes through `check_transition`, called under the payment's row lock,
so that concurrent requests, recovery and bank callbacks can only ever move a payment forwards.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    REQUIRES_ACTION = "requires_action"  # the customer must authenticate first (§15); nothing held yet
    PENDING = "pending"
    AUTHORIZED = "authorized"
    CAPTURING = "capturing"
    VOIDING = "voiding"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    FAILED = "failed"
    EXPIRED = "expired"


S = Status

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # authenticated → `pending` while the authorization is in flight (or straight to its outcome); failed
    # (challenge failed, timed out, bank refused); voided (nothing is held, so nothing to release at the bank)
    S.REQUIRES_ACTION: frozenset({S.PENDING, S.AUTHORIZED, S.CAPTURED, S.FAILED, S.VOIDED}),
    S.PENDING: frozenset({S.AUTHORIZED, S.CAPTURED, S.FAILED}),
    S.AUTHORIZED: frozenset({S.CAPTURING, S.VOIDING, S.EXPIRED, S.CAPTURED, S.VOIDED}),
    S.CAPTURING: frozenset({S.CAPTURED, S.EXPIRED}),
    S.VOIDING: frozenset({S.VOIDED, S.EXPIRED}),
    S.CAPTURED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.VOIDED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}

FINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
IN_FLIGHT = frozenset({S.PENDING, S.CAPTURING, S.VOIDING})
REFUNDABLE = frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED})

# The event each status emits when reached (in-flight card statuses emit nothing; see `event_for`).
_EVENTS: dict[Status, str] = {
    S.REQUIRES_ACTION: "payment.requires_action",
    S.AUTHORIZED: "payment.authorized",
    S.CAPTURED: "payment.captured",
    S.FAILED: "payment.failed",
    S.VOIDED: "payment.voided",
    S.EXPIRED: "payment.expired",
}


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def reachable_from(start: Status) -> frozenset[Status]:
    """Every status a payment in `start` can be in later, `start` included (a status never moves backwards)."""
    seen = {start}
    frontier = [start]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()] - seen:
            seen.add(nxt)
            frontier.append(nxt)
    return frozenset(seen)


def event_for(target: Status, *, method_type: str) -> str | None:
    """Event type emitted on reaching `target`; a UPI payment's `pending` is an observable state."""
    if target is S.PENDING:
        return "payment.pending" if method_type == "upi" else None
    return _EVENTS.get(target)


def amount_capturable(status: Status, amount: int) -> int:
    return amount if status is S.AUTHORIZED else 0


def refundable_remaining(amount_captured: int, amount_refunded: int, amount_refund_reserved: int) -> int:
    """Pending refunds already count against what remains, so concurrent refunds cannot overshoot."""
    return amount_captured - amount_refunded - amount_refund_reserved


def status_after_refund(amount_captured: int, amount_refunded: int) -> Status:
    return S.REFUNDED if amount_refunded >= amount_captured else S.PARTIALLY_REFUNDED
