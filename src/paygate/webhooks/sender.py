"""One HTTP attempt of a webhook delivery.

All network I/O goes through an httpx transport: by default aiohttp's behind the destination guard
(`guarded_aiohttp`; httpx's `GuardedTransport` while tracing is on), which refuses to connect anywhere but a
public address (API.md §19); unit tests swap in `httpx.MockTransport`, or inject
a resolver, and the rest of the delivery code never sees a socket. With aiohttp's transport the Sender calls
its wire work directly (`AiohttpTransport.open`): the request it sends — headers, their order, timeouts, the
guard — is the one httpx's client would have handed it, without httpx's Request, Response and client layers,
which cost twice aiohttp's own CPU per send (docs/decisions/0024). An attempt never raises for anything
the receiver does: timeouts, refused connections, refused destinations and non-2xx answers all come
back as an `Attempt` to be recorded, with texts that can always be stored.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import httpx
from yarl import URL

from paygate import tracing
from paygate.aiotransport import CHUNK, AiohttpTransport, mapped
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


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> tuple[URL, str, str | None]:
    """A URL as httpx's client would send it: the URL handed to aiohttp, the host the guard judges, the Host
    header (None when the URL has no host). Cached: a worker sends to the same few endpoints again and again
    (an invalid URL raises httpx.InvalidURL, which is not cached)."""
    parsed = httpx.URL(url)
    return URL(str(parsed), encoded=True), parsed.host, parsed.netloc.decode("ascii") if parsed.host else None


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
        # The direct path's copy of what the client adds to every request: its default headers (Accept,
        # Accept-Encoding, Connection, User-Agent, in its order) and its timeouts.
        self._direct = transport if isinstance(transport, AiohttpTransport) else None
        self._default_headers = list(self._http.headers.multi_items())
        self._timeouts = self._http.timeout.as_dict()

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
                if self._direct is not None:
                    resp = await self._open_direct(self._direct, url, body, request_headers)
                    try:
                        status = resp.status
                        values = resp.headers.getall("retry-after", [])
                        retry_after = ", ".join(values) if values else None  # as httpx's Headers.get reads them
                        snippet = await _read_answer(resp, BODY_LIMIT + 1)
                    finally:
                        resp.release()
                else:
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


    async def _open_direct(self, transport: AiohttpTransport, url: str, body: bytes, headers: dict[str, str]
                           ) -> aiohttp.ClientResponse:
        """`send`'s POST through aiohttp's transport without httpx's client, up to the answer's head. Raises
        what the client path raises (httpx's errors)."""
        target, host, host_header = _target(url)
        # httpx's wire form: lower-case names; Host, the client's defaults (a request's own value replacing
        # one), the request's other headers, Content-Length
        own = {k.lower(): v for k, v in headers.items()}
        wire = [("host", host_header)] if host_header is not None else []
        wire += [(k, own.pop(k, v)) for k, v in self._default_headers]
        wire += [*own.items(), ("content-length", str(len(body)))]
        return await transport.open("POST", target, host, wire, body, self._timeouts)


async def _read_answer(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """`_read_prefix` of aiohttp's response: up to `limit` bytes of the body as httpx would have decoded it."""
    if resp.headers.get("content-encoding", "identity").strip().lower() != "identity":
        # compressed (rare): httpx's decoders, so that what is stored is what the client path stored
        response = httpx.Response(resp.status, headers=list(resp.raw_headers), stream=_AiohttpBody(resp))
        return await _read_prefix(response, limit)
    out = bytearray()
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            out += chunk
            if len(out) >= limit:
                break
    except Exception as exc:
        raise mapped(exc, None, connecting=False) from exc
    return bytes(out[:limit])


class _AiohttpBody(httpx.AsyncByteStream):
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_chunked(CHUNK):
                yield chunk
        except Exception as exc:
            raise mapped(exc, None, connecting=False) from exc


def _short(exc: BaseException) -> str:
    return printable(str(exc) or type(exc).__name__, ERROR_LIMIT)
