"""The acquirer seam (API.md §14): what the gateway needs from an acquiring bank, and nothing more.

In the style of httpx's transports: services hold a `Mapping[str, Acquirer]` (Gateway.acquirers) and call
these methods; what goes over the wire is each implementation's business (acquirers/simbank.py speaks the
simulator's protocol, acquirers/memory.py keeps everything in memory for fast tests).

Every mutation carries paygate's own idempotency key (the bank-operation id) so that an acquirer acts at
most once per key, however often it is asked. A call either returns an `AcquirerResult` (the acquirer's
answer: `succeeded`, `failed`, or `pending` for an asynchronous method) or raises:

- `NotSent`: the request certainly never reached the acquirer (every attempt failed before a byte of it
  could be read by the bank: connection refused, connect timeout, no free connection). Nothing can have
  been applied; failover may try elsewhere at once.
- `OutcomeUnknown`: it may have been applied (a timeout, a reset after sending, a 5xx, an unreadable
  answer). Only an inquiry can tell; until one does, the operation belongs to this acquirer.
- `Rejected`: the acquirer refused the request itself (4xx) — a bug of ours, never a payment outcome.

The split between the first two is the one failover depends on (docs/decisions/0014), so it errs one way
only: anything that is not *certainly* unsent is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol


class OpKind(StrEnum):
    AUTHENTICATION = "authentication"  # the cardholder's challenge (§15): no money; `pending` until answered
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    VOID = "void"
    EXPIRY = "expiry"  # a void sent because the authorization expired: the same call, its own outcome
    REFUND = "refund"
    VERIFICATION = "verification"  # a card check that holds no money (saved cards, §16)


Outcome = Literal["succeeded", "failed", "pending", "unknown"]


@dataclass(frozen=True)
class AcquirerResult:
    """An acquirer's answer about one operation. `operation_id` is the bank's own id for it (what its
    inspection API lists, §14 `acquirer_references`); `captured` is set when an authorization was also
    captured. `unknown` only comes from code that turned an `Unavailable` into a result (services)."""

    outcome: Outcome
    failure_code: str | None = None
    operation_id: str | None = None
    captured: bool = False
    capture_id: str | None = None  # with `captured`: the bank's id of the capture made with the authorization
    challenge_url: str | None = None  # an authentication `pending`: the page the cardholder answers (§15)

    @property
    def final(self) -> bool:
        return self.outcome in ("succeeded", "failed")


UNKNOWN = AcquirerResult("unknown")


class AcquirerError(Exception):
    """Anything an acquirer call raises."""


class Unavailable(AcquirerError):
    """No answer. `maybe_applied` says whether the acquirer may nonetheless have acted."""

    maybe_applied = True


class NotSent(Unavailable):
    """The request certainly never reached the acquirer: it has not acted and, for this call, never will."""

    maybe_applied = False


class OutcomeUnknown(Unavailable):
    """The request may have reached the acquirer and been applied; ask it (inquire) before anything else."""


class Rejected(AcquirerError):
    """The acquirer refused the request itself (a 4xx): protocol misuse, not an outcome."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class CallbackError(AcquirerError):
    """A callback that cannot be accepted; nothing of it may be recorded."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class BadSignature(CallbackError):
    """Missing, invalid or stale authentication: the sender is not this acquirer (→ 401)."""


class MalformedCallback(CallbackError):
    """Authentic, but not the shape the acquirer's protocol defines (→ 400: a bank bug, not a retry)."""


@dataclass(frozen=True)
class Callback:
    """An authenticated callback, in the gateway's terms. `acquirer` is who sent it (the gateway decides
    that from the URL it handed out, not from the body)."""

    acquirer: str
    id: str
    type: str
    outcome: Literal["succeeded", "failed"]
    reference: str
    operation: str  # "authorization" | "capture" | "refund"
    amount: int
    failure_code: str | None
    body: dict[str, Any]
    # dispute.* (§12 v2): the bank's dispute and its reason; settlement.created: the batch and its currency
    dispute_id: str | None = None
    reason: str | None = None
    settlement_id: str | None = None
    currency: str | None = None


class DisputeClosed(AcquirerError):
    """The acquirer no longer takes an answer to this dispute (decided, or answered the other way)."""


class Acquirer(Protocol):
    """One acquiring bank. Implementations must be safe to call concurrently from one event loop."""

    name: str

    async def authorize(self, *, key: str, reference: str, amount: int, currency: str,
                        payment_method: Mapping[str, Any], capture: bool, callback_url: str | None) -> AcquirerResult:
        """Hold (and with `capture`, take) `amount` on the payment method, for `reference` (the payment id)."""
        ...

    async def authenticate(self, *, key: str, reference: str, amount: int, currency: str,
                           payment_method: Mapping[str, Any], callback_url: str | None,
                           return_url: str) -> AcquirerResult:
        """Open the cardholder's challenge (§15): `pending` with `challenge_url`, where the customer's browser
        goes, and from where it is sent (303) to `return_url`; `failed` with the card's decline code when the
        card cannot be charged anyway; `succeeded` when no challenge is needed. The result of a pending one
        comes by callback (`authentication.*`) and by `inquire`. The authorization that follows names it
        (`{"type": "authenticated", "authentication": <its operation_id>}`) instead of the card."""
        ...

    async def capture(self, *, key: str, reference: str, amount: int) -> AcquirerResult: ...

    async def void(self, *, key: str, reference: str) -> AcquirerResult: ...

    async def refund(self, *, key: str, reference: str, amount: int) -> AcquirerResult: ...

    async def inquire(self, *, key: str) -> AcquirerResult:
        """What became of the operation sent with `key`. If the acquirer never received it, it must now
        never act on it (a fence), and the answer is `failed` / `processing_error`. Raises
        `OutcomeUnknown` (never `NotSent`: an unsent inquiry says nothing about the operation)."""
        ...

    async def resolve(self, *, kind: OpKind, key: str, reference: str, amount: int) -> AcquirerResult:
        """Finish an operation left in flight (the recovery worker): an authorization, whose card paygate
        never kept, by inquiry; any other by sending it again with the same key."""
        ...

    async def verify(self, *, key: str, reference: str, payment_method: Mapping[str, Any]) -> AcquirerResult:
        """Check that a card can be charged without holding any money (`succeeded`, or `failed` with a
        decline code). For saving a card (§16)."""
        ...

    async def submit_evidence(self, *, dispute_id: str, text: str) -> str:
        """Send evidence for the acquirer's dispute `dispute_id`; returns its status there (`under_review`,
        or the decision if it came already). Raises DisputeClosed, Unavailable."""
        ...

    async def accept_dispute(self, *, dispute_id: str) -> str:
        """Concede the dispute; returns its status there (`lost`). Raises DisputeClosed, Unavailable."""
        ...

    async def settlements(self) -> list[dict[str, Any]]:
        """The acquirer's settlement batches, `{"id", "currency"}` each (for announcements we missed)."""
        ...

    async def settlement(self, settlement_id: str) -> dict[str, Any]:
        """One batch: `{"id", "currency", "lines": [{"reference", "type", "amount", "fee", "net"}]}`."""
        ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> Callback:
        """Authenticate and parse one callback of this acquirer's protocol. Raises CallbackError."""
        ...

    async def aclose(self) -> None: ...
