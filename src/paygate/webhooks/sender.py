"""One HTTP attempt of a webhook delivery.

All network I/O goes through an httpx transport, so unit tests swap in `httpx.MockTransport` and the
rest of the delivery code never sees a socket. An attempt never raises for anything the receiver does:
timeouts, refused connections and non-2xx answers all come back as an `Attempt` to be recorded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

TIMEOUT_S = 15.0
BODY_LIMIT = 1024  # bytes of the receiver's answer kept per attempt, for the merchant's delivery log
USER_AGENT = "paygate"
RETRY_AFTER_CAP_S = 86_400.0  # a receiver may ask us to wait, not to wait forever


@dataclass(frozen=True)
class Attempt:
    """What happened to one POST: the receiver's status (None if it never answered) and timings."""

    at: datetime
    response_status: int | None
    duration_ms: int
    error: str | None = None
    response_body: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300

    @property
    def gone(self) -> bool:
        return self.response_status == 410

    def as_json(self) -> dict[str, Any]:
        """The attempt as stored and shown in the delivery object (API.md §8, plus `response_body`)."""
        return {
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "response_status": self.response_status,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "response_body": self.response_body,
        }


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or garbled."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_CAP_S)


async def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` bytes of the body: a receiver cannot make us download a large answer."""
    out = bytearray()
    async for chunk in response.aiter_bytes():
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out[:limit])


class Sender:
    """POSTs signed webhook bodies; one shared connection pool for every delivery of a process."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
        max_connections: int = 100,
    ) -> None:
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout_s,
            follow_redirects=False,  # a redirect is not a 2xx: the merchant should fix the URL
            trust_env=False,  # no proxy from the environment sees merchant payloads
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"user-agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """One attempt with a total deadline of `timeout_s` (connect, send, first KB of the answer)."""
        at = datetime.now(UTC)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        snippet: bytes | None = None
        retry_after: str | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                request_headers = {**headers, "content-type": "application/json"}
                async with self._http.stream("POST", url, content=body, headers=request_headers) as response:
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                    snippet = await _read_prefix(response, BODY_LIMIT)
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout: no complete answer within {self.timeout_s:g} s"
        except httpx.ConnectError as exc:
            error = f"connection failed: {_short(exc)}"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            error = f"{type(exc).__name__}: {_short(exc)}"
        duration_ms = round((time.perf_counter() - started) * 1000)
        if status is not None and 200 <= status < 300:
            error = None  # the 2xx arrived in time; a body cut short after it does not undo that
        elif status is not None and error is None:
            error = f"unexpected status {status}"
        return Attempt(
            at=at,
            response_status=status,
            duration_ms=duration_ms,
            error=error,
            response_body=snippet.decode("utf-8", "ignore") if snippet is not None else None,
            retry_after_s=parse_retry_after(retry_after, at) if status in (429, 503) else None,
        )


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
