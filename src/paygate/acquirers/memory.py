"""An in-memory acquirer with scriptable behaviour, for fast tests of the use cases (no bank process).

It keeps the contract of base.Acquirer as a real bank would: one operation per idempotency key (a repeat
replays it), an inquiry fences off a key it has never seen, holds per reference. What the next call of a
kind does is scripted: `acquirer.script(OpKind.AUTHORIZATION, Behaviour.REFUSE, Behaviour.APPROVE)`;
unscripted calls approve. `calls` records every call, for assertions ("the bank was never asked again").
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from paygate.acquirers.base import (
    AcquirerResult,
    Callback,
    DisputeClosed,
    NotSent,
    OpKind,
    OutcomeUnknown,
)
from paygate.acquirers.simbank import parse_callback_body


class Behaviour(StrEnum):
    APPROVE = "approve"
    PENDING = "pending"  # accepted, the outcome comes later by callback (UPI)
    DECLINE = "decline"  # failed with `failure_code` (default card_declined)
    REFUSE = "refuse"  # connection refused: NotSent, nothing applied
    ERROR_NOT_APPLIED = "error_not_applied"  # 5xx without acting: OutcomeUnknown; inquiry → processing_error
    ERROR_APPLIED = "error_applied"  # acted, then 5xx: OutcomeUnknown; inquiry → what was done
    TIMEOUT_INQUIRY_APPLIED = "timeout_inquiry_applied"  # acted, answer timed out; inquiry → what was done
    TIMEOUT_INQUIRY_UNKNOWN = "timeout_inquiry_unknown"  # acted, timed out, inquiries unreachable until healed


@dataclass(frozen=True)
class Step:
    behaviour: Behaviour
    failure_code: str = "card_declined"


@dataclass
class Call:
    method: str
    key: str
    reference: str | None
    amount: int | None


@dataclass
class _Op:
    id: str
    kind: OpKind
    reference: str
    amount: int
    result: AcquirerResult


@dataclass
class MemoryAcquirer:
    name: str = "memory"
    calls: list[Call] = field(default_factory=list)
    inquiries_reachable: bool = True
    _script: dict[OpKind, deque[Step]] = field(default_factory=lambda: defaultdict(deque))
    _ops: dict[str, _Op] = field(default_factory=dict)
    _fenced: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    held: dict[str, int] = field(default_factory=dict)  # reference → amount authorized and not released
    # disputes: bank dispute id → status there (tests set it up); settlement batches: id → batch
    disputes: dict[str, str] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def script(self, kind: OpKind, *steps: Behaviour | Step) -> None:
        for step in steps:
            self._script[kind].append(step if isinstance(step, Step) else Step(step))

    def heal(self) -> None:
        """Inquiries answer again (after TIMEOUT_INQUIRY_UNKNOWN)."""
        self.inquiries_reachable = True

    def operations(self, reference: str) -> list[tuple[OpKind, str]]:
        """(kind, status) of every operation applied for `reference`, like the simulator's inspection API."""
        return [(op.kind, op.result.outcome) for op in self._ops.values() if op.reference == reference]

    # --- the Acquirer protocol -------------------------------------------------------------------

    async def authorize(self, *, key: str, reference: str, amount: int, currency: str,
                        payment_method: Mapping[str, Any], capture: bool, callback_url: str | None) -> AcquirerResult:
        self.calls.append(Call("authorize", key, reference, amount))
        return self._mutate(OpKind.AUTHORIZATION, key, reference, amount, captured=capture)

    async def authenticate(self, *, key: str, reference: str, amount: int, currency: str,
                           payment_method: Mapping[str, Any], callback_url: str | None,
                           return_url: str) -> AcquirerResult:
        """Unscripted: a pending challenge, answered by `answer_challenge`."""
        self.calls.append(Call("authenticate", key, reference, amount))
        return self._mutate(OpKind.AUTHENTICATION, key, reference, amount)

    def answer_challenge(self, key: str, *, passed: bool) -> None:
        """The cardholder answers the challenge opened with `key` (what the bank's page does)."""
        op = self._ops[key]
        op.result = AcquirerResult("succeeded" if passed else "failed", None if passed else "authentication_failed",
                                   op.id)

    async def capture(self, *, key: str, reference: str, amount: int) -> AcquirerResult:
        self.calls.append(Call("capture", key, reference, amount))
        return self._mutate(OpKind.CAPTURE, key, reference, amount)

    async def void(self, *, key: str, reference: str) -> AcquirerResult:
        self.calls.append(Call("void", key, reference, None))
        return self._mutate(OpKind.VOID, key, reference, self.held.get(reference, 0))

    async def refund(self, *, key: str, reference: str, amount: int) -> AcquirerResult:
        self.calls.append(Call("refund", key, reference, amount))
        return self._mutate(OpKind.REFUND, key, reference, amount)

    async def inquire(self, *, key: str) -> AcquirerResult:
        self.calls.append(Call("inquire", key, None, None))
        if not self.inquiries_reachable:
            raise OutcomeUnknown(f"{self.name}: inquiry unanswered")
        op = self._ops.get(key)
        if op is not None:
            return op.result
        self._fenced.add(key)  # a late arrival of this key is refused from now on
        return AcquirerResult("failed", "processing_error", None)

    async def resolve(self, *, kind: OpKind, key: str, reference: str, amount: int) -> AcquirerResult:
        if kind in (OpKind.AUTHORIZATION, OpKind.VERIFICATION, OpKind.AUTHENTICATION):
            return await self.inquire(key=key)
        if kind is OpKind.CAPTURE:
            return await self.capture(key=key, reference=reference, amount=amount)
        if kind in (OpKind.VOID, OpKind.EXPIRY):
            return await self.void(key=key, reference=reference)
        return await self.refund(key=key, reference=reference, amount=amount)

    async def verify(self, *, key: str, reference: str, payment_method: Mapping[str, Any]) -> AcquirerResult:
        self.calls.append(Call("verify", key, reference, 0))
        return self._mutate(OpKind.VERIFICATION, key, reference, 0)

    async def submit_evidence(self, *, dispute_id: str, text: str) -> str:
        return self._answer(dispute_id, "under_review")

    async def accept_dispute(self, *, dispute_id: str) -> str:
        return self._answer(dispute_id, "lost")

    def _answer(self, dispute_id: str, target: str) -> str:
        self.calls.append(Call(target, dispute_id, None, None))
        status = self.disputes.get(dispute_id, "needs_response")
        if status == "needs_response":
            self.disputes[dispute_id] = target
            return target
        if status == target:
            return status
        raise DisputeClosed(f"{self.name}: dispute {dispute_id} is {status}")

    async def settlements(self) -> list[dict[str, Any]]:
        return [{"id": b["id"], "currency": b["currency"]} for b in self.batches.values()]

    async def settlement(self, settlement_id: str) -> dict[str, Any]:
        return self.batches[settlement_id]

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> Callback:
        """Unsigned: in-process tests hand bodies over directly (the simulator's body shape)."""
        return parse_callback_body(self.name, body)

    async def aclose(self) -> None:
        return None

    # --- internals ---------------------------------------------------------------------------------

    def _mutate(self, kind: OpKind, key: str, reference: str, amount: int, captured: bool = False) -> AcquirerResult:
        existing = self._ops.get(key)
        if existing is not None:  # idempotent replay: no new step consumed
            return existing.result
        if key in self._fenced:
            return AcquirerResult("failed", "processing_error", None)
        queue = self._script[kind]
        step = queue.popleft() if queue else Step(Behaviour.APPROVE)
        b = step.behaviour
        if b is Behaviour.REFUSE:
            raise NotSent(f"{self.name}: connection refused")
        if b is Behaviour.ERROR_NOT_APPLIED:
            raise OutcomeUnknown(f"{self.name}: HTTP 500")
        op_id = f"mop_{next(self._ids)}"
        if b is Behaviour.DECLINE:
            result = AcquirerResult("failed", step.failure_code, op_id)
        elif b is Behaviour.PENDING or kind is OpKind.AUTHENTICATION:
            challenge = f"http://{self.name}.invalid/challenge/{op_id}" if kind is OpKind.AUTHENTICATION else None
            result = AcquirerResult("pending", None, op_id, challenge_url=challenge)
        else:
            capture_id = f"mop_{next(self._ids)}" if captured and kind is OpKind.AUTHORIZATION else None
            result = AcquirerResult("succeeded", None, op_id, captured=captured, capture_id=capture_id)
            self._apply(kind, reference, amount, captured)
        self._ops[key] = _Op(op_id, kind, reference, amount, result)
        if b is Behaviour.TIMEOUT_INQUIRY_UNKNOWN:
            self.inquiries_reachable = False
        if b in (Behaviour.ERROR_APPLIED, Behaviour.TIMEOUT_INQUIRY_APPLIED, Behaviour.TIMEOUT_INQUIRY_UNKNOWN):
            raise OutcomeUnknown(f"{self.name}: applied, answer lost")
        return result

    def _apply(self, kind: OpKind, reference: str, amount: int, captured: bool) -> None:
        if kind is OpKind.AUTHORIZATION and not captured:
            self.held[reference] = amount
        elif kind in (OpKind.CAPTURE, OpKind.VOID, OpKind.EXPIRY):
            self.held.pop(reference, None)
