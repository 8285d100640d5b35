"""The gateway's connector to the bank (API.md §12).

Each mutation is retried on timeouts, connection errors and 5xx — always with the same Idempotency-Key,
so the bank acts at most once — with exponential backoff and full jitter. When the attempts are spent
the outcome is "unknown": the caller records that and resolves it later with `inquire`, never guesses.
Card numbers and CVCs are never logged. All I/O goes through an httpx transport, so tests can pass
`httpx.MockTransport`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from paygate.domain import text

log = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "pending", "unknown"]
_OUTCOMES: dict[str, Outcome] = {"succeeded": "succeeded", "failed": "failed", "pending": "pending"}


@dataclass(frozen=True)
class BankResult:
    outcome: Outcome
    failure_code: str | None = None
    operation_id: str | None = None
    captured: bool = False


UNKNOWN = BankResult("unknown")


class BankError(Exception):
    """Protocol misuse: the bank refused the request itself (4xx). A bug, not a bank outcome."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class BankUnavailable(BankError):
    """An inspection call (GET) could not reach the bank."""


class BankClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 3.0,
        attempts: int = 3,
        backoff_base_s: float = 0.05,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._attempts = attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = max(backoff_base_s, 2.0)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            transport=transport,
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
        payment_method: dict[str, Any],
        capture: bool,
        callback_url: str | None,
    ) -> BankResult:
        body = {
            "reference": reference,
            "amount": amount,
            "currency": currency,
            "capture": capture,
            "payment_method": payment_method,
            "callback_url": callback_url,
        }
        return _operation_result(await self._post("/v1/authorizations", key, body))

    async def capture(self, *, key: str, reference: str, amount: int) -> BankResult:
        body = {"reference": reference, "amount": amount}
        return _operation_result(await self._post("/v1/captures", key, body))

    async def void(self, *, key: str, reference: str) -> BankResult:
        return _operation_result(await self._post("/v1/voids", key, {"reference": reference}))

    async def refund(self, *, key: str, reference: str, amount: int) -> BankResult:
        body = {"reference": reference, "amount": amount}
        return _operation_result(await self._post("/v1/refunds", key, body))

    async def inquire(self, *, key: str) -> BankResult:
        """What became of the operation sent with `key`. If the bank never received it, it now never
        will act on it (a tombstone): the answer is failed/processing_error. 'unknown' if unreachable."""
        data = await self._post("/v1/inquiries", key, {"idempotency_key": key})
        if data is None:
            return UNKNOWN
        return _operation_result(data.get("operation"))

    # --- inspection -------------------------------------------------------------------------------

    async def operations(self, reference: str) -> list[dict[str, Any]]:
        data = await self._get("/v1/operations", params={"reference": reference})
        ops = data.get("data")
        if not isinstance(ops, list):
            raise BankError("malformed operations list", body=data)
        return ops

    async def card(self, number: str) -> dict[str, Any]:
        return await self._get(f"/v1/cards/{quote(number, safe='')}")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> BankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- transport --------------------------------------------------------------------------------

    async def _backoff(self, attempt: int) -> None:
        if self._backoff_base_s > 0:
            cap = min(self._backoff_cap_s, self._backoff_base_s * 2**attempt)
            await asyncio.sleep(random.uniform(0, cap))

    async def _post(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The decoded 2xx body, or None when every attempt timed out, failed to connect or got 5xx."""
        headers = {"Idempotency-Key": key}
        for attempt in range(self._attempts):
            if attempt:
                await self._backoff(attempt - 1)
            try:
                resp = await self._http.post(path, json=body, headers=headers)
            except httpx.TransportError as exc:  # timeouts, refused/reset connections, protocol errors
                log.warning(
                    "bank %s key=%s attempt %d/%d: %s",
                    path,
                    key,
                    attempt + 1,
                    self._attempts,
                    type(exc).__name__,
                )
                continue
            if resp.status_code >= 500:
                log.warning(
                    "bank %s key=%s attempt %d/%d: HTTP %d",
                    path,
                    key,
                    attempt + 1,
                    self._attempts,
                    resp.status_code,
                )
                continue
            if not 200 <= resp.status_code < 300:
                raise BankError(f"bank refused {path}: HTTP {resp.status_code}", resp.status_code, _safe_json(resp))
            data = _safe_json(resp)
            if not isinstance(data, dict):
                log.warning("bank %s key=%s: malformed 2xx body", path, key)
                return None
            return data
        return None

    async def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        for attempt in range(self._attempts):
            if attempt:
                await self._backoff(attempt - 1)
            try:
                resp = await self._http.get(path, params=params)
            except httpx.TransportError:
                continue
            if resp.status_code >= 500:
                continue
            data = _safe_json(resp)
            if not 200 <= resp.status_code < 300 or not isinstance(data, dict):
                raise BankError(f"bank refused GET: HTTP {resp.status_code}", resp.status_code, data)
            return data
        raise BankUnavailable("bank unreachable")


def _safe_json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _operation_result(op: Any) -> BankResult:
    """A bank operation object → BankResult; anything unreadable is 'unknown' (never a guess)."""
    if op is None:
        return UNKNOWN
    if not isinstance(op, dict) or op.get("status") not in _OUTCOMES:
        log.warning("bank answered an unreadable operation")
        return UNKNOWN
    failure = op.get("failure_code")
    return BankResult(
        outcome=_OUTCOMES[op["status"]],
        # one we could not store (NUL) or show is no code at all: the payment fails as processing_error
        failure_code=failure if isinstance(failure, str) and len(failure) <= 100 and text.acceptable(failure) else None,
        operation_id=op.get("id") if isinstance(op.get("id"), str) else None,
        captured=op.get("captured") is True,
    )
