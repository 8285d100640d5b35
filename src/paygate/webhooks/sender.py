"""One HTTP attempt of a webhook delivery.

All network I/O goes through an httpx transport: by default aiohttp's behind the destination guard
(`guarded_aiohttp`; httpx's `GuardedTransport` while tracing is on), which refuses to connect anywhere but a
public address (API.md §19); unit tests swap in `httpx.MockTransport`, or inject
a resolver, and the rest of the delivery code never sees a socket. An attempt never raises for anything
the receiver does: timeouts, refused connections, refused destinations and non-2xx answers all come
back as an `Attempt` to be recorded, with texts that can always be stored.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from paygate import tracing
from paygate.domain.webhooks import BODY_LIMIT, DESTINATION_NOT_ALLOWED, ERROR_LIMIT, Attempt, body_text, printable
from paygate.webhooks.destinations import (
    DestinationNotAllowed,
    GuardedTransport,
    Resolver,
    guarded_aiohttp,
    system_resolver,
)

__all__ = ["BODY_LIMIT", "Attempt", "Sender", "parse_retry_after"]

TIMEOUT_S = 15.0
USER_AGENT = "paygate"
RETRY_AFTER_CAP_S = 86_400.0  # a receiver may ask us to wait, not to wait forever


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
        allow_private: bool = False,
        resolver: Resolver = system_resolver,
        timeout_s: float = TIMEOUT_S,
        max_connections: int = 100,
    ) -> None:
        """`transport` replaces the network entirely (tests); otherwise every connection goes through the
        destination check, lifted by `allow_private` (PAYGATE_WEBHOOK_ALLOW_PRIVATE)."""
        self.timeout_s = timeout_s
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if transport is None and tracing.active():  # the transport OpenTelemetry instruments
            transport = GuardedTransport(resolver=resolver, allow_private=allow_private, limits=limits)
        elif transport is None:
            transport = guarded_aiohttp(resolver=resolver, allow_private=allow_private,
                                        max_connections=max_connections)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout_s,
            follow_redirects=False,  # a redirect is not a 2xx: the merchant should fix the URL
            trust_env=False,  # no proxy from the environment sees merchant payloads
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
                    snippet = await _read_prefix(response, BODY_LIMIT + 1)  # one more: was a character cut?
        except DestinationNotAllowed:
            # Refused before any byte was sent; the error says no more than that, so the delivery log
            # cannot be used to map what the gateway's network holds.
            error = DESTINATION_NOT_ALLOWED
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
            response_body=body_text(snippet) if snippet is not None else None,
            retry_after_s=parse_retry_after(retry_after, at) if status in (429, 503) else None,
        )


def _short(exc: BaseException) -> str:
    return printable(str(exc) or type(exc).__name__, ERROR_LIMIT)
