"""The simulator's protocol (API.md §12) as an `Acquirer` (acquirers/base.py): today's only real connector.

Each mutation is retried on timeouts, connection errors and 5xx — always with the same Idempotency-Key,
so the bank acts at most once — with exponential backoff and full jitter. When the attempts are spent the
call raises `NotSent` if no attempt can have reached the bank, else `OutcomeUnknown`; the caller resolves
that with `inquire`, never guesses. Each attempt ends by `timeout_s` (+ DEADLINE_GRACE_S) whatever the
transport does; an attempt cut off by that deadline may have been applied. Card numbers and CVCs are
never logged. All I/O goes through an httpx transport, so tests can pass `httpx.MockTransport`; by
default aiohttp's (paygate/aiotransport.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from paygate import aiotransport
from paygate.acquirers.base import (
    AcquirerResult,
    BadSignature,
    Callback,
    DisputeClosed,
    MalformedCallback,
    NotSent,
    OpKind,
    OutcomeUnknown,
    Rejected,
)
from paygate.domain import text
from paygate.webhooks import standard

log = logging.getLogger(__name__)

_OUTCOMES: dict[str, Any] = {"succeeded": "succeeded", "failed": "failed", "pending": "pending"}
# Failures that happen before the request could be written: the bank cannot have seen a byte of it. Any
# other transport error (a read timeout, a reset or close after sending, a write error part-way) may
# follow a request the bank received and acted on.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# How much longer than `timeout_s` an attempt may take in all before it is abandoned: enough that a single
# phase's own timeout (a connect timeout: certainly not sent) is raised, and classified, before it.
DEADLINE_GRACE_S = 0.1
CALLBACK_TOLERANCE_S = 300
CALLBACK_TYPES = {"operation.succeeded": "succeeded", "operation.failed": "failed"}
DISPUTE_TYPES = frozenset({"dispute.created", "dispute.won", "dispute.lost"})
DISPUTE_REASONS = frozenset({"fraudulent", "product_not_received", "duplicate", "general"})
SETTLEMENT_TYPE = "settlement.created"
CALLBACK_OPERATIONS = frozenset({"authorization", "capture", "refund"})
AUTHENTICATION_TYPES = {"authentication.succeeded": "succeeded", "authentication.failed": "failed"}


class BankUnavailable(Exception):
    """An inspection call (GET) could not reach the bank."""


class SimBank:
    """The simulator's connector. `name` is the acquirer's configured name; `webhook_secret` authenticates
    its callbacks."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str = "bank",
        webhook_secret: str = "",
        timeout_s: float = 3.0,
        attempts: int = 3,
        backoff_base_s: float = 0.05,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.name = name
        self._webhook_secret = webhook_secret
        self._attempts = attempts
        # httpx's timeouts bound each phase (pool, connect, read between chunks); nothing bounds a write that
        # never completes or an answer that trickles in, so every attempt also has an overall deadline.
        self._deadline_s = timeout_s + DEADLINE_GRACE_S
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = max(backoff_base_s, 2.0)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            transport=transport or aiotransport.default_transport(max_connections),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,  # service-to-service: no proxies from the environment
        )

    # --- mutations --------------------------------------------------------------------------------

    async def authorize(
        self,
        *,
        key: str,
        reference: str,
        amount: int,
        currency: str,
        payment_method: Mapping[str, Any],
        capture: bool,
        callback_url: str | None,
    ) -> AcquirerResult:
        body = {
            "reference": reference,
            "amount": amount,
            "currency": currency,
            "capture": capture,
            "payment_method": dict(payment_method),
            "callback_url": callback_url,
        }
        return _operation_result(await self._post("/v1/authorizations", key, body))

    async def authenticate(self, *, key: str, reference: str, amount: int, currency: str,
                           payment_method: Mapping[str, Any], callback_url: str | None,
                           return_url: str) -> AcquirerResult:
        body = {"reference": reference, "amount": amount, "currency": currency,
                "payment_method": dict(payment_method), "callback_url": callback_url, "return_url": return_url}
        return _operation_result(await self._post("/v1/authentications", key, body))

    async def capture(self, *, key: str, reference: str, amount: int) -> AcquirerResult:
        body = {"reference": reference, "amount": amount}
        return _operation_result(await self._post("/v1/captures", key, body))

    async def void(self, *, key: str, reference: str) -> AcquirerResult:
        return _operation_result(await self._post("/v1/voids", key, {"reference": reference}))

    async def refund(self, *, key: str, reference: str, amount: int) -> AcquirerResult:
        body = {"reference": reference, "amount": amount}
        return _operation_result(await self._post("/v1/refunds", key, body))

    async def inquire(self, *, key: str) -> AcquirerResult:
        """What became of the operation sent with `key`. If the bank never received it, it now never
        will act on it (a tombstone): the answer is failed/processing_error. 'unknown' if unreachable."""
        try:
            data = await self._post("/v1/inquiries", key, {"idempotency_key": key})
        except NotSent:  # the inquiry did not get there: that says nothing about the operation
            raise OutcomeUnknown(f"bank {self.name}: inquiry for {key} not sent") from None
        return _operation_result(data.get("operation"))

    async def resolve(self, *, kind: OpKind, key: str, reference: str, amount: int) -> AcquirerResult:
        if kind is OpKind.AUTHORIZATION:
            return await self.inquire(key=key)
        if kind is OpKind.CAPTURE:
            return await self.capture(key=key, reference=reference, amount=amount)
        if kind in (OpKind.VOID, OpKind.EXPIRY):
            return await self.void(key=key, reference=reference)
        if kind is OpKind.REFUND:
            return await self.refund(key=key, reference=reference, amount=amount)
        # a verification holds nothing: one the bank never answered can simply be asked about
        return await self.inquire(key=key)

    async def verify(self, *, key: str, reference: str, payment_method: Mapping[str, Any]) -> AcquirerResult:
        body = {"reference": reference, "payment_method": dict(payment_method)}
        return _operation_result(await self._post("/v1/verifications", key, body))

    # --- disputes and settlement (§12 v2) ------------------------------------------------------------

    async def _dispute_answer(self, path: str, body: dict[str, Any]) -> str:
        """The dispute's status after our answer. Our own idempotency is the bank's state (a repeated
        answer returns the dispute unchanged), so the retries of _post are safe."""
        try:
            data = await self._post(path, "dispute:" + path, body)
        except Rejected as exc:
            if exc.status_code == 409:
                raise DisputeClosed(f"bank {self.name}: {path} refused: dispute closed") from None
            raise
        status = data.get("status")
        if not isinstance(status, str):
            raise OutcomeUnknown(f"bank {self.name}: unreadable dispute")
        return status

    async def submit_evidence(self, *, dispute_id: str, text: str) -> str:
        return await self._dispute_answer(f"/v1/disputes/{quote(dispute_id, safe='')}/evidence", {"text": text})

    async def accept_dispute(self, *, dispute_id: str) -> str:
        return await self._dispute_answer(f"/v1/disputes/{quote(dispute_id, safe='')}/accept", {})

    async def settlements(self) -> list[dict[str, Any]]:
        data = await self._get("/v1/settlements")
        batches = data.get("data")
        if not isinstance(batches, list):
            raise Rejected("malformed settlements list", body=data)
        return [b for b in batches if isinstance(b, dict) and isinstance(b.get("id"), str)]

    async def settlement(self, settlement_id: str) -> dict[str, Any]:
        return await self._get(f"/v1/settlements/{quote(settlement_id, safe='')}")

    # --- callbacks --------------------------------------------------------------------------------

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> Callback:
        """Standard Webhooks signature over the raw body (5-minute tolerance, constant-time compare) first,
        then the §12 shape."""
        msg_id, ts, sig = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        if not msg_id or not ts or not sig:
            raise BadSignature("missing_signature",
                               "Bank callbacks must carry webhook-id, webhook-timestamp and webhook-signature.")
        if not standard.verify(self._webhook_secret, msg_id, ts, body, sig, tolerance_s=CALLBACK_TOLERANCE_S,
                               now=now):
            raise BadSignature("invalid_signature", "The callback signature is invalid or too old.")
        return parse_callback_body(self.name, body)

    # --- inspection -------------------------------------------------------------------------------

    async def operations(self, reference: str) -> list[dict[str, Any]]:
        data = await self._get("/v1/operations", params={"reference": reference})
        ops = data.get("data")
        if not isinstance(ops, list):
            raise Rejected("malformed operations list", body=data)
        return ops

    async def card(self, number: str) -> dict[str, Any]:
        return await self._get(f"/v1/cards/{quote(number, safe='')}")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SimBank:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- transport --------------------------------------------------------------------------------

    async def _backoff(self, attempt: int) -> None:
        if self._backoff_base_s > 0:
            cap = min(self._backoff_cap_s, self._backoff_base_s * 2**attempt)
            await asyncio.sleep(random.uniform(0, cap))

    async def _post(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """The decoded 2xx body. Raises NotSent when no attempt can have reached the bank, OutcomeUnknown
        when one may have (timeouts, resets after connecting, 5xx, an unreadable 2xx), Rejected on a 4xx."""
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        content = orjson.dumps(body)  # once for every attempt, and cheaper than httpx's json=
        maybe_applied = False
        for attempt in range(self._attempts):
            if attempt:
                await self._backoff(attempt - 1)
            try:
                async with asyncio.timeout(self._deadline_s):
                    resp = await self._http.post(path, content=content, headers=headers)
            except TimeoutError:  # the attempt's overall deadline: it may have been written, and applied
                maybe_applied = True
                log.warning("bank %s %s key=%s attempt %d/%d: no answer within %.1f s", self.name, path, key,
                            attempt + 1, self._attempts, self._deadline_s)
                continue
            except httpx.TransportError as exc:  # timeouts, refused/reset connections, protocol errors
                maybe_applied = maybe_applied or not isinstance(exc, _NOT_SENT)
                log.warning("bank %s %s key=%s attempt %d/%d: %s", self.name, path, key, attempt + 1,
                            self._attempts, type(exc).__name__)
                continue
            if resp.status_code >= 500:
                maybe_applied = True  # a 5xx may follow an applied operation whose answer was lost
                log.warning("bank %s %s key=%s attempt %d/%d: HTTP %d", self.name, path, key, attempt + 1,
                            self._attempts, resp.status_code)
                continue
            if not 200 <= resp.status_code < 300:
                raise Rejected(f"bank {self.name} refused {path}: HTTP {resp.status_code}", resp.status_code,
                               _safe_json(resp))
            data = _safe_json(resp)
            if not isinstance(data, dict):
                log.warning("bank %s %s key=%s: malformed 2xx body", self.name, path, key)
                raise OutcomeUnknown(f"bank {self.name}: unreadable answer to {path}")
            return data
        if maybe_applied:
            raise OutcomeUnknown(f"bank {self.name}: no answer to {path} after {self._attempts} attempts")
        raise NotSent(f"bank {self.name}: {path} could not be sent in {self._attempts} attempts")

    async def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        for attempt in range(self._attempts):
            if attempt:
                await self._backoff(attempt - 1)
            try:
                async with asyncio.timeout(self._deadline_s):
                    resp = await self._http.get(path, params=params)
            except (httpx.TransportError, TimeoutError):
                continue
            if resp.status_code >= 500:
                continue
            data = _safe_json(resp)
            if not 200 <= resp.status_code < 300 or not isinstance(data, dict):
                raise Rejected(f"bank {self.name} refused GET: HTTP {resp.status_code}", resp.status_code, data)
            return data
        raise BankUnavailable("bank unreachable")


def _safe_json(resp: httpx.Response) -> Any:
    try:
        return orjson.loads(resp.content)
    except ValueError:  # orjson.JSONDecodeError included
        return None


def _operation_result(op: Any) -> AcquirerResult:
    """A bank operation object → AcquirerResult; anything unreadable raises OutcomeUnknown (never a guess)."""
    if not isinstance(op, dict) or op.get("status") not in _OUTCOMES:
        log.warning("bank answered an unreadable operation")
        raise OutcomeUnknown("unreadable bank operation")
    failure = op.get("failure_code")
    return AcquirerResult(
        outcome=_OUTCOMES[op["status"]],
        # one we could not store (NUL) or show is no code at all: the payment fails as processing_error
        failure_code=failure if isinstance(failure, str) and len(failure) <= 100 and text.acceptable(failure) else None,
        operation_id=op.get("id") if isinstance(op.get("id"), str) else None,
        captured=op.get("captured") is True,
        capture_id=op.get("capture_id") if isinstance(op.get("capture_id"), str) else None,
        challenge_url=_challenge_url(op.get("challenge_url")),
    )


def _challenge_url(value: Any) -> str | None:
    """The bank's challenge page, if it is one a browser can be sent to (anything else is no page at all)."""
    if not isinstance(value, str) or len(value) > 2048 or not value.startswith(("http://", "https://")):
        return None
    return value if text.acceptable(value) else None


def _bad(message: str, param: str | None = None) -> MalformedCallback:
    return MalformedCallback("parameter_invalid", message, param)


def parse_callback_body(acquirer: str, body: bytes) -> Callback:
    """The §12 callback body → a Callback; MalformedCallback if it is not that shape."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad("The body is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise _bad("The body must be a JSON object.")
    event_id, type_, data = doc.get("id"), doc.get("type"), doc.get("data")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 255:
        raise _bad("id must be a string of 1-255 characters.", "id")
    if (type_ not in CALLBACK_TYPES and type_ not in DISPUTE_TYPES and type_ != SETTLEMENT_TYPE
            and type_ not in AUTHENTICATION_TYPES):
        raise _bad("type must be operation.*, authentication.*, dispute.* or settlement.created.", "type")
    if not isinstance(data, dict):
        raise _bad("data must be an object.", "data")
    if type_ in AUTHENTICATION_TYPES:  # §12 v2: data {"reference"}
        if not text.acceptable(event_id) or not text.storable(doc):
            raise _bad("The body must not contain control characters.", "id")
        result: Literal["succeeded", "failed"] = "succeeded" if AUTHENTICATION_TYPES[type_] == "succeeded" else "failed"
        return Callback(acquirer=acquirer, id=event_id, type=type_, outcome=result,
                        reference=_short(data, "reference"), operation="authentication", amount=0,
                        failure_code=None, body=doc)
    if type_ in DISPUTE_TYPES or type_ == SETTLEMENT_TYPE:
        if not text.acceptable(event_id):
            raise _bad("id must not contain control characters.", "id")
        return _money_callback(acquirer, event_id, type_, data, doc)
    reference, operation, amount = data.get("reference"), data.get("operation"), data.get("amount")
    failure_code = data.get("failure_code")
    if not isinstance(reference, str) or not 1 <= len(reference) <= 255:
        raise _bad("data.reference must be a string of 1-255 characters.", "data[reference]")
    if operation not in CALLBACK_OPERATIONS:
        raise _bad("data.operation must be authorization, capture or refund.", "data[operation]")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise _bad("data.amount must be a non-negative integer.", "data[amount]")
    if failure_code is not None and (not isinstance(failure_code, str) or len(failure_code) > 100):
        raise _bad("data.failure_code must be a short string.", "data[failure_code]")
    # API.md §19: a NUL would make the insert fail (a 500 the bank retries for ever); refuse it, naming it.
    for param, value in (("id", event_id), ("data[reference]", reference), ("data[failure_code]", failure_code)):
        if value is not None and not text.acceptable(value):
            raise _bad(f"{param} must not contain control characters.", param)
    if not text.storable(doc):
        raise _bad("The body must not contain NUL characters or unpaired surrogates.")
    outcome: Literal["succeeded", "failed"] = "succeeded" if CALLBACK_TYPES[type_] == "succeeded" else "failed"
    return Callback(acquirer=acquirer, id=event_id, type=type_, outcome=outcome, reference=reference,
                    operation=operation, amount=amount, failure_code=failure_code, body=doc)


def _short(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not text.acceptable(value):
        raise _bad(f"data.{name} must be a string of 1-255 characters.", f"data[{name}]")
    return value


def _money_callback(acquirer: str, event_id: str, type_: str, data: dict[str, Any], doc: dict[str, Any]) -> Callback:
    """dispute.* `{reference, dispute_id, amount, reason}`; settlement.created `{settlement_id, currency}`."""
    if not text.storable(doc):
        raise _bad("The body must not contain NUL characters or unpaired surrogates.")
    if type_ == SETTLEMENT_TYPE:
        settlement_id, currency = _short(data, "settlement_id"), _short(data, "currency")
        return Callback(acquirer=acquirer, id=event_id, type=type_, outcome="succeeded", reference=settlement_id,
                        operation="settlement", amount=0, failure_code=None, body=doc, settlement_id=settlement_id,
                        currency=currency)
    amount = data.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 99_999_999:
        raise _bad("data.amount must be a positive integer.", "data[amount]")
    reason = data.get("reason")
    if reason not in DISPUTE_REASONS:
        raise _bad("data.reason must be fraudulent, product_not_received, duplicate or general.", "data[reason]")
    return Callback(acquirer=acquirer, id=event_id, type=type_, outcome="succeeded",
                    reference=_short(data, "reference"), operation="dispute", amount=amount, failure_code=None,
                    body=doc, dispute_id=_short(data, "dispute_id"), reason=reason)
