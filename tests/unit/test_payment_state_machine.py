"""The lifecycle as a hypothesis state machine: random captures, voids, refunds and bank outcomes never
break an invariant — amounts stay within bounds and a status never moves backwards."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from paygate.domain.payments import (
    FINAL,
    REFUNDABLE,
    TRANSITIONS,
    Status,
    amount_capturable,
    can_transition,
    reachable_from,
    refundable_remaining,
    status_after_refund,
)

S = Status
# A partial order of progress: a payment only ever moves to a higher rank (or stays).
RANK = {S.REQUIRES_ACTION: -1, S.PENDING: 0, S.AUTHORIZED: 1, S.CAPTURING: 2, S.VOIDING: 2, S.CAPTURED: 3,
        S.PARTIALLY_REFUNDED: 4, S.REFUNDED: 5, S.VOIDED: 5, S.FAILED: 5, S.EXPIRED: 5}


def test_every_transition_moves_forward() -> None:
    for src, targets in TRANSITIONS.items():
        for dst in targets:
            assert RANK[dst] >= RANK[src], (src, dst)


def test_final_states_have_no_exit() -> None:
    assert {S.REFUNDED, S.VOIDED, S.FAILED, S.EXPIRED} == FINAL
    for s in FINAL:
        for t in Status:
            assert not can_transition(s, t)


class Lifecycle(RuleBasedStateMachine):
    """A model payment driven like the services drive it: the state machine gates every move."""

    @initialize(amount=st.integers(1, 99_999_999))
    def start(self, amount: int) -> None:
        self.amount = amount
        self.status = S.PENDING
        self.captured = 0
        self.refunded = 0
        self.reserved: list[int] = []
        self.history = [S.PENDING]

    def _go(self, target: Status) -> bool:
        if not can_transition(self.status, target):
            return False
        if target is not self.status:
            self.history.append(target)
        self.status = target
        return True

    @rule(ok=st.booleans(), auto=st.booleans())
    def bank_answers_authorization(self, ok: bool, auto: bool) -> None:
        if self.status is not S.PENDING:
            assert not can_transition(self.status, S.PENDING)
            return
        if not ok:
            self._go(S.FAILED)
        elif auto:
            assert self._go(S.CAPTURED)
            self.captured = self.amount
        else:
            assert self._go(S.AUTHORIZED)

    @rule(fraction=st.floats(0.01, 1.5))
    def capture(self, fraction: float) -> None:
        amount = max(1, int(self.amount * fraction))
        if self.status is not S.AUTHORIZED or amount > amount_capturable(self.status, self.amount):
            return  # the service answers 409
        assert self._go(S.CAPTURING)

    @rule(ok=st.booleans(), fraction=st.floats(0.01, 1.0))
    def bank_answers_capture(self, ok: bool, fraction: float) -> None:
        if self.status is not S.CAPTURING:
            return
        if ok:
            assert self._go(S.CAPTURED)
            self.captured = max(1, int(self.amount * fraction))
        else:
            assert self._go(S.EXPIRED)

    @rule()
    def void(self) -> None:
        if self.status is S.AUTHORIZED:
            assert self._go(S.VOIDING)

    @rule(ok=st.booleans())
    def bank_answers_void(self, ok: bool) -> None:
        if self.status is S.VOIDING:
            assert self._go(S.VOIDED if ok else S.EXPIRED)

    @rule(amount=st.integers(1, 99_999_999))
    def refund(self, amount: int) -> None:
        remaining = refundable_remaining(self.captured, self.refunded, sum(self.reserved))
        if self.status not in REFUNDABLE or amount > remaining:
            return  # 409 amount_exceeds_refundable / payment_not_refundable
        self.reserved.append(amount)

    @precondition(lambda self: bool(self.reserved))
    @rule(ok=st.booleans())
    def bank_answers_refund(self, ok: bool) -> None:
        amount = self.reserved.pop(0)
        if ok:
            self.refunded += amount
            assert self._go(status_after_refund(self.captured, self.refunded))

    @rule()
    def late_duplicate_events_change_nothing(self) -> None:
        for target in (S.PENDING, S.AUTHORIZED, S.FAILED):
            if RANK[target] < RANK[self.status]:
                assert not can_transition(self.status, target)

    @invariant()
    def amounts_within_bounds(self) -> None:
        if not hasattr(self, "amount"):
            return
        assert 0 <= self.captured <= self.amount
        assert 0 <= self.refunded + sum(self.reserved) <= self.captured
        if self.status is S.REFUNDED:
            assert self.refunded == self.captured
        assert amount_capturable(self.status, self.amount) in (0, self.amount)

    @invariant()
    def history_only_moves_forward(self) -> None:
        if not hasattr(self, "history"):
            return
        ranks = [RANK[s] for s in self.history]
        assert ranks == sorted(ranks)
        assert len(set(self.history)) == len(self.history)


TestLifecycle = Lifecycle.TestCase


def test_reachable_from_is_the_closure_of_the_table() -> None:
    assert reachable_from(Status.REFUNDED) == {Status.REFUNDED}
    assert reachable_from(Status.REQUIRES_ACTION) >= {Status.PENDING, Status.CAPTURED, Status.REFUNDED, Status.VOIDED}
    assert Status.REQUIRES_ACTION not in reachable_from(Status.PENDING)  # never backwards
    for status in Status:
        later = reachable_from(status)
        assert status in later and TRANSITIONS[status] <= later
        assert all(reachable_from(n) <= later for n in TRANSITIONS[status])
