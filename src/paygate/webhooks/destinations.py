"""Keeping webhooks away from the gateway's own network: the URL check and the guarded transport.

Two moments judge a destination with the same rules (`domain.destinations`):
- when a merchant saves a URL (`check_url`, API and dashboard alike): its literal host, or every
  address its name resolves to now;
- when an attempt connects: `guarded_aiohttp` (the default, docs/decisions/0019) gives aiohttp's connector
  a resolver that refuses if any answer is not allowed, and the connector connects only to the checked
  IPs (no DNS cache); a literal address never reaches a resolver, so it is judged before the request.
  `GuardedTransport` (httpx's own, used while tracing is on) does the same in httpcore's network backend.
  Nothing resolves the name a second time between the check and the connect, so a name that answers a
  public address at save time and a private one at send time (DNS rebinding) is refused.

TLS is unaffected: aiohttp and httpcore start TLS with `server_hostname` set to the URL's host, so SNI
and certificate verification are against the name, not the IP we connected to; the Host header is the
URL's too. The resolver is a seam: tests inject one to play a rebinding name.
"""

from __future__ import annotations

import asyncio
import socket
import typing
from collections.abc import Awaitable, Callable

import httpcore
import httpx

from paygate.aiotransport import AiohttpTransport, CheckingResolver
from paygate.domain import destinations as rules

# host, port -> the addresses (as text) that name resolves to; raises OSError when it does not resolve.
Resolver = Callable[[str, int], Awaitable[list[str]]]

CHECK_RESOLVE_TIMEOUT_S = 5.0
DEFAULT_LIMITS = httpx.Limits()


class DestinationNotAllowed(Exception):
    """An attempt's host is, or resolved to, an address webhooks are not sent to."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} is {reason}")
        self.host, self.reason = host, reason


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def allowed_addresses(host: str, port: int, *, resolver: Resolver, allow_private: bool) -> list[str]:
    """The addresses to connect to for `host`; raises DestinationNotAllowed if any of them is refused
    (a name with one private answer among public ones is not a destination we want to half-trust)."""
    address = rules.literal(host)
    if address is not None:
        if not allow_private and (reason := rules.refusal(address)) is not None:
            raise DestinationNotAllowed(host, reason)
        return [str(address)]
    if not allow_private and rules.is_numeric_shorthand(host):
        raise DestinationNotAllowed(host, rules.NUMERIC_SHORTHAND)
    if not allow_private and rules.is_local_name(host):
        raise DestinationNotAllowed(host, "a loopback name")
    answers = await resolver(host, port)
    if not answers:
        raise OSError(f"{host} did not resolve")
    if not allow_private:
        for answer in answers:
            resolved = rules.literal(answer)
            reason = "not an IP address" if resolved is None else rules.refusal(resolved)
            if reason is not None:
                raise DestinationNotAllowed(host, reason)
    return answers


async def check_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> str | None:
    """Why `url` may not be a webhook endpoint (a message for a 400 on `url`), or None.

    A name that does not resolve (yet) is accepted: it points nowhere we must protect, and sending to
    it will fail, visibly, in the delivery log — while the send-time check still guards it.
    """
    problem = rules.syntax_problem(url)
    if problem is not None or allow_private:
        return problem
    host, port = rules.host_and_port(url)
    try:
        async with asyncio.timeout(CHECK_RESOLVE_TIMEOUT_S):
            await allowed_addresses(host, port, resolver=resolver, allow_private=allow_private)
    except DestinationNotAllowed as refused:
        return rules.not_allowed_message(host, refused.reason)
    except (OSError, UnicodeError, TimeoutError):
        return None
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the destination check between resolving and connecting."""

    def __init__(self, *, resolver: Resolver, allow_private: bool,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.resolver, self.allow_private = resolver, allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await allowed_addresses(host, port, resolver=self.resolver, allow_private=self.allow_private)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in addresses:  # in the resolver's order, like a plain connect (no racing)
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationNotAllowed(path, "a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request/response mapping, error mapping, pooling) over a GuardedBackend.

    httpx does not take a network backend as an argument, so the pool it built is replaced by an
    identical one that has ours; no proxy is ever used (the Sender does not read the environment).
    """

    def __init__(self, *, resolver: Resolver = system_resolver, allow_private: bool = False,
                 limits: httpx.Limits = DEFAULT_LIMITS, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        """`inner` is what finally opens sockets (httpcore's AnyIO backend; tests record with their own)."""
        super().__init__(limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(resolver=resolver, allow_private=allow_private, inner=inner),
        )


def guarded_aiohttp(*, resolver: Resolver = system_resolver, allow_private: bool = False,
                    max_connections: int = 100) -> AiohttpTransport:
    """The aiohttp transport with the destination check: every new connection's name through
    `allowed_addresses`, every literal address judged before the request is made."""

    def check_literal(host: str) -> None:
        # aiohttp may take a shorthand such as 127.1 for an address and connect without asking the resolver
        # (whether it does depends on its version): refused here, whatever aiohttp makes of it.
        if rules.is_numeric_shorthand(host):
            raise DestinationNotAllowed(host, rules.NUMERIC_SHORTHAND)
        address = rules.literal(host)
        if address is not None and (reason := rules.refusal(address)) is not None:
            raise DestinationNotAllowed(host, reason)

    async def resolve(host: str, port: int) -> list[str]:
        return await allowed_addresses(host, port, resolver=resolver, allow_private=allow_private)

    return AiohttpTransport(max_connections=max_connections, resolver=CheckingResolver(resolve),
                            host_check=None if allow_private else check_literal)
