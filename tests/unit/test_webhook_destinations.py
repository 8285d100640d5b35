"""Where webhooks may go (API.md §19): the address rules, the save-time check and the connect-time guard.

The guard is exercised through httpx's real transport with an in-memory network backend (httpcore's
mock stream) in place of sockets, so a refusal is shown to happen before any connect, and an accepted
name is shown to be connected by its checked IP with the name kept for Host, SNI and the certificate.
"""

from __future__ import annotations

import ipaddress
import ssl
import typing

import httpcore
import pytest

from paygate.aiotransport import AiohttpTransport, CheckingResolver
from paygate.config import Settings
from paygate.domain import destinations as rules
from paygate.domain.webhooks import DESTINATION_NOT_ALLOWED
from paygate.webhooks.destinations import GuardedTransport, check_url, guarded_aiohttp
from paygate.webhooks.sender import Sender

PUBLIC = "93.184.215.14"  # never connected to: the network below is in memory

REFUSED = [
    "127.0.0.1", "127.255.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "2002:7f00:1::",
]
ALLOWED = ["8.8.8.8", PUBLIC, "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("text", REFUSED)
def test_non_public_addresses_are_refused(text: str) -> None:
    assert rules.refusal(ipaddress.ip_address(text)) is not None


@pytest.mark.parametrize("text", ALLOWED)
def test_public_unicast_addresses_are_allowed(text: str) -> None:
    assert rules.refusal(ipaddress.ip_address(text)) is None


def test_the_reason_names_the_kind_of_address() -> None:
    assert rules.refusal(ipaddress.ip_address("127.0.0.1")) == "a loopback address"
    assert rules.refusal(ipaddress.ip_address("169.254.169.254")) == "a link-local address"
    assert rules.refusal(ipaddress.ip_address("::ffff:10.0.0.1")) == "an IPv4-mapped address"
    assert rules.refusal(ipaddress.ip_address("64:ff9b::a00:1")) == "a private address (inside a transition address)"


class Answers:
    """A resolver that answers from a script, one answer per lookup (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers, self.asked = list(answers), list[tuple[str, int]]()

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def nxdomain(host: str, port: int) -> list[str]:
    raise OSError(f"{host}: Name or service not known")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/h", "http://10.1.2.3:8080/h", "http://169.254.169.254/latest/meta-data/", "http://[::1]:80/",
    "http://[::ffff:127.0.0.1]/", "https://[fe80::1%25eth0]/", "http://0.0.0.0/", "http://localhost:8787/",
    "http://api.localhost/", "HTTP://LOCALHOST./", "http://2130706433/", "http://0x08.8.8.8/", "http://8.8.8.010/",
])
async def test_urls_naming_a_non_public_host_are_refused_without_a_lookup(url: str) -> None:
    resolver = Answers([PUBLIC])
    problem = await check_url(url, allow_private=False, resolver=resolver)
    assert problem is not None and "PAYGATE_WEBHOOK_ALLOW_PRIVATE" in problem
    assert resolver.asked == []
    assert await check_url(url, allow_private=True, resolver=resolver) is None


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    assert await check_url("https://hooks.example/x", allow_private=False, resolver=Answers([PUBLIC])) is None
    for answer in (["10.0.0.5"], [PUBLIC, "127.0.0.1"], ["::ffff:192.168.0.1"]):
        problem = await check_url("https://hooks.example/x", allow_private=False, resolver=Answers(answer))
        assert problem is not None and problem.startswith("url's host hooks.example is a")
    resolver = Answers(["10.0.0.5"])
    assert await check_url("https://hooks.example:8443/x", allow_private=True, resolver=resolver) is None
    assert resolver.asked == []  # allowed anyway: no lookup needed


async def test_a_name_that_does_not_resolve_is_accepted_and_bad_syntax_is_not() -> None:
    assert await check_url("https://nowhere.invalid/x", allow_private=False, resolver=nxdomain) is None
    for bad in ("ftp://x.example/", "https://", "http://x.example:99999/", "http://a b.example/", "http://x\x00.example/",
                "https://x.example/" + "a" * 2048):
        assert await check_url(bad, allow_private=True, resolver=nxdomain) is not None


class Recorded(httpcore.AsyncMockBackend):
    """httpcore's in-memory network, remembering where it was asked to connect and what TLS name it got."""

    def __init__(self, buffer: list[bytes]) -> None:
        super().__init__(buffer)
        self.connects: list[tuple[str, int]] = []
        self.tls_names: list[str | None] = []

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None, socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        names = self.tls_names

        class Tls(type(stream)):  # type: ignore[misc]
            async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                                timeout: float | None = None) -> httpcore.AsyncNetworkStream:  # noqa: ASYNC109
                names.append(server_hostname)
                return self

        stream.__class__ = Tls
        return stream


OK = [b"HTTP/1.1 200 OK\r\n", b"content-length: 2\r\n", b"\r\n", b"ok"]


async def test_an_accepted_name_is_connected_by_its_checked_ip_with_host_and_sni_kept() -> None:
    net = Recorded(OK)
    resolver = Answers([PUBLIC])
    async with Sender(transport=GuardedTransport(resolver=resolver, inner=net)) as s:
        a = await s.send("https://hooks.example/x", b"{}", {})
    assert a.ok and resolver.asked == [("hooks.example", 443)]
    assert net.connects == [(PUBLIC, 443)] and net.tls_names == ["hooks.example"]


async def test_a_name_rebound_to_a_private_address_is_refused_before_connecting() -> None:
    resolver = Answers([PUBLIC], ["10.0.0.7"])  # public when the URL was saved, private when sent
    assert await check_url("https://rebind.example/x", allow_private=False, resolver=resolver) is None
    net = Recorded(OK)
    async with Sender(transport=GuardedTransport(resolver=resolver, inner=net)) as s:
        a = await s.send("https://rebind.example/x", b"{}", {})
    assert not a.ok and a.response_status is None and a.error == DESTINATION_NOT_ALLOWED
    assert net.connects == [] and len(resolver.asked) == 2


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
                                 "http://169.254.169.254/", "http://10.0.0.1/", "http://localhost/"])
async def test_literal_and_local_destinations_are_refused_at_send_time(url: str) -> None:
    net = Recorded(OK)
    async with Sender(transport=GuardedTransport(resolver=Answers([PUBLIC]), inner=net)) as s:
        a = await s.send(url, b"{}", {})
    assert a.error == DESTINATION_NOT_ALLOWED and net.connects == []


async def test_allow_private_lifts_the_guard_but_still_connects_to_what_was_resolved() -> None:
    net = Recorded(OK)
    async with Sender(transport=GuardedTransport(resolver=Answers(["10.0.0.7"]), allow_private=True, inner=net)) as s:
        a = await s.send("http://intranet.example:8000/x", b"{}", {})
    assert a.ok and net.connects == [("10.0.0.7", 8000)]


async def test_redirects_are_not_followed() -> None:
    net = Recorded([b"HTTP/1.1 302 Found\r\n", b"location: http://127.0.0.1/\r\n", b"content-length: 0\r\n", b"\r\n"])
    async with Sender(transport=GuardedTransport(resolver=Answers([PUBLIC]), inner=net)) as s:
        a = await s.send("http://hooks.example/x", b"{}", {})
    assert a.response_status == 302 and not a.ok and net.connects == [(PUBLIC, 80)]


SHORTHANDS = ["2130706433", "0x7f.1", "0x7F000001", "127.1", "0177.0.0.1", "127.0.0.01", "127.0.0.1.", "0x08.8.8.8",
              "8.8.8.010", "10.0x0.0.1", "hooks.example.0x10", "hooks.example.123"]


@pytest.mark.parametrize("host", SHORTHANDS)
def test_numeric_hosts_other_than_a_canonical_dotted_quad_are_shorthands(host: str) -> None:
    assert rules.is_numeric_shorthand(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1", "hooks.example",
                                  "1.example", "0x7f.example", "example.com."])
def test_canonical_addresses_and_names_are_not_shorthands(host: str) -> None:
    assert not rules.is_numeric_shorthand(host)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0x08.8.8.8", "127.0.0.1."])
async def test_the_aiohttp_guard_refuses_numeric_shorthands_whatever_aiohttp_makes_of_them(host: str) -> None:
    # Refused by the guard itself, before aiohttp parses or connects: older aiohttp versions may take some
    # of these for an address and connect without asking the resolver.
    resolver = Answers([PUBLIC])
    async with Sender(transport=guarded_aiohttp(resolver=resolver)) as s:
        a = await s.send(f"http://{host}/x", b"{}", {})
    assert a.error == DESTINATION_NOT_ALLOWED and a.response_status is None
    assert resolver.asked == []


def test_the_default_sender_is_guarded() -> None:
    """aiohttp's transport with the checking resolver and the literal check (tests/integration/
    test_webhook_guard_sockets.py sends through it); httpx's guarded one while tracing is on."""
    transport = Sender()._http._transport
    assert isinstance(transport, AiohttpTransport)
    assert isinstance(transport._resolver, CheckingResolver) and transport._host_check is not None
    assert isinstance(Sender(allow_private=True)._http._transport, AiohttpTransport)


def test_the_setting_reads_the_environment_and_an_explicit_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYGATE_WEBHOOK_ALLOW_PRIVATE", "true")
    assert Settings().webhook_private_allowed is True
    monkeypatch.setenv("PAYGATE_WEBHOOK_ALLOW_PRIVATE", "false")
    assert Settings().webhook_private_allowed is False
    monkeypatch.delenv("PAYGATE_WEBHOOK_ALLOW_PRIVATE")
    unset = Settings()
    assert unset.webhook_allow_private is None
    assert unset.webhook_private_allowed is (getattr(unset, "env", "production") == "development")
