"""An httpx transport that does its wire work with aiohttp's client (docs/decisions/0019).

The outbound seams — the acquirer connectors and the webhook sender — keep httpx's API: tests hand them
`httpx.MockTransport` or an ASGI transport, and the callers classify httpx's exception tree (for the bank
hop, "certainly not sent" versus "maybe applied", which failover depends on). Only what sits under the
client changes: httpcore + h11 cost several times more CPU per request than aiohttp's C HTTP parser and
connection pool, and the bank call and the webhook sends are two of a payment's four CPU consumers.

Errors map onto httpx's tree erring one way only: an error is a connect error (nothing sent) only when
aiohttp raised it while it was still acquiring or opening a connection; everything after that — a reset,
a disconnect, a read timeout, a malformed answer — is a read/protocol error, so it may have been applied.

Timeouts: httpx's `connect` and `pool` become aiohttp's `sock_connect` and `connect` (which, in aiohttp,
covers waiting for a pooled connection *and* opening one), `read` becomes `sock_read` (between two reads of
the answer, as in httpcore). aiohttp has no write timeout: the bodies sent here are a few KB, which the kernel
takes at once, and every caller bounds the whole call as well (the connector's per-call timeout, the webhook
sender's total deadline).

With tracing on (paygate.tracing), callers use httpx's own transport instead: OpenTelemetry instruments
that one (a CLIENT span and the `traceparent` header per call), and tracing is a diagnosis mode, where
CPU per request matters less than seeing the call.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from paygate import tracing

CHUNK = 64 * 1024
KEEPALIVE_S = 5.0  # httpx's default keep-alive expiry

# host -> raises if that host may not be connected to (the webhook guard checks literal addresses with it:
# aiohttp never hands a literal IP to the resolver)
HostCheck = Callable[[str], None]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (its connection pool) per transport, made on first use inside the running loop."""

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = KEEPALIVE_S,
                 resolver: AbstractResolver | None = None, host_check: HostCheck | None = None) -> None:
        """`resolver` replaces name resolution for every new connection (the webhook guard); without one, the
        system's, cached by aiohttp for 10 s."""
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._resolver = resolver
        self._host_check = host_check
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_expiry,
                resolver=self._resolver,
                # a guarded resolver must judge every new connection (no DNS cache between check and connect)
                use_dns_cache=self._resolver is None,
                happy_eyeballs_delay=None,  # the addresses in the resolver's order, one at a time, like httpcore
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes the body itself from the headers we pass on
                trust_env=False,  # no proxy from the environment
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx's client keeps cookies (ours never set any)
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),  # httpx already sent its own
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        resp = await self.open(request.method, URL(str(request.url), encoded=True), request.url.host,
                               request.headers.multi_items(), body, request.extensions.get("timeout", {}),
                               request=request)
        return httpx.Response(
            status_code=resp.status, headers=list(resp.raw_headers), stream=_Body(resp, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (resp.reason or "").encode("latin-1")},
        )

    async def open(
        self, method: str, url: URL, host: str, headers: list[tuple[str, str]], body: bytes,
        timeouts: Mapping[str, float | None], *, request: httpx.Request | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and return aiohttp's response once its head has arrived: `handle_async_request`'s
        wire work, which the webhook sender also calls directly (without httpx's Request and Response around
        it, most of the CPU of a send). `host` is the URL's host as httpx has it (the host check judges
        that), `timeouts` httpx's per-request timeout dict; errors are raised as httpx's (`request` in them)."""
        if self._host_check is not None:
            self._host_check(host)
        connect, pool, read = timeouts.get("connect"), timeouts.get("pool"), timeouts.get("read")
        client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect, sock_read=read,
            connect=None if connect is None or pool is None else connect + pool,
        )
        session = self._get_session()
        try:
            return await session.request(method, url, headers=headers, data=body or None, allow_redirects=False,
                                         timeout=client_timeout)
        except Exception as exc:
            raise mapped(exc, request, connecting=True) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx.AsyncByteStream):
    """The answer's body, read as the caller reads it; closing returns the connection to the pool (or closes
    it when the body was not read to the end)."""

    def __init__(self, resp: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._resp, self._request = resp, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_chunked(CHUNK):
                yield chunk
        except Exception as exc:
            raise mapped(exc, self._request, connecting=False) from exc

    async def aclose(self) -> None:
        self._resp.release()


def mapped(exc: Exception, request: httpx.Request | None, *, connecting: bool) -> Exception:
    """aiohttp's error as httpx's. `connecting`: raised by the call that sends the request, in which
    aiohttp's connector errors mean no connection was had, hence nothing sent. `request` may be None for a
    caller that made none (the webhook sender's direct send: it reads only the error's type and text)."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    if connecting and isinstance(exc, aiohttp.ConnectionTimeoutError):  # a pooled or a new connection
        return httpx.ConnectTimeout(str(exc) or "connect timeout", request=request)
    if connecting and isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, DNS, TLS
        return httpx.ConnectError(str(exc.os_error) or str(exc), request=request)
    if connecting and isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(str(exc), request=request)
    if isinstance(exc, TimeoutError):  # SocketTimeoutError (no byte within `read`) and any other
        return httpx.ReadTimeout(str(exc) or "read timeout", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):  # resets, payload errors: after sending
        return httpx.ReadError(str(exc) or type(exc).__name__, request=request)
    return exc  # ours (a guard's refusal) or a bug: not a transport error to classify


class CheckingResolver(AbstractResolver):
    """Resolution through `resolve` (host, port -> addresses as text; raises to refuse), for aiohttp's
    connector: the addresses returned are the only ones it connects to."""

    def __init__(self, resolve: Callable[[str, int], Awaitable[list[str]]]) -> None:
        self._resolve = resolve

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        addresses = await self._resolve(host.rstrip("."), port)
        return [{"hostname": host, "host": a, "port": port, "proto": 0, "flags": socket.AI_NUMERICHOST,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET} for a in addresses]

    async def close(self) -> None:
        return None


def default_transport(max_connections: int) -> httpx.AsyncBaseTransport | None:
    """aiohttp's; None (httpx's own, which OpenTelemetry instruments) while tracing is on."""
    return None if tracing.active() else AiohttpTransport(max_connections=max_connections)
