"""One delivery attempt over httpx's MockTransport: what the receiver does becomes an Attempt, never an error."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from paygate.domain.webhooks import Attempt
from paygate.webhooks.sender import BODY_LIMIT, Sender, parse_retry_after

URL = "https://merchant.example/hooks"


def _sender(handler: httpx.MockTransport, timeout_s: float = 15.0) -> Sender:
    return Sender(transport=handler, timeout_s=timeout_s)


async def test_a_2xx_is_success_and_the_request_is_what_standard_webhooks_expects() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with _sender(httpx.MockTransport(handler)) as s:
        a = await s.send(URL, b'{"id":"evt_1"}', {"webhook-id": "evt_1"})
    assert a.ok and a.response_status == 204 and a.error is None and a.duration_ms >= 0
    req = seen[0]
    assert req.method == "POST" and str(req.url) == URL and req.content == b'{"id":"evt_1"}'
    assert req.headers["content-type"] == "application/json" and req.headers["user-agent"] == "paygate"
    assert req.headers["webhook-id"] == "evt_1"


async def test_non_2xx_redirects_and_410_are_failures() -> None:
    for status in (301, 400, 410, 500):
        async with _sender(httpx.MockTransport(lambda _, s=status: httpx.Response(s, text="nope"))) as s:
            a = await s.send(URL, b"{}", {})
        assert not a.ok and a.response_status == status and a.error == f"unexpected status {status}"
        assert a.response_body == "nope" and a.gone == (status == 410)


async def test_retry_after_is_read_on_429_and_503_only() -> None:
    for status, expected in ((429, 30.0), (503, 30.0), (500, None)):
        transport = httpx.MockTransport(lambda _, s=status: httpx.Response(s, headers={"retry-after": "30"}))
        async with _sender(transport) as s:
            a = await s.send(URL, b"{}", {})
        assert a.retry_after_s == expected


def test_retry_after_parses_seconds_and_dates() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert parse_retry_after("10000000", now) == 86_400.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


async def test_the_answer_kept_is_at_most_1_kb() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content="é".encode() * 5000))
    async with _sender(transport) as s:
        a = await s.send(URL, b"{}", {})
    assert a.ok and a.response_body is not None and len(a.response_body.encode()) <= BODY_LIMIT


async def test_timeouts_and_refused_connections_are_failed_attempts() -> None:
    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    async with _sender(httpx.MockTransport(hang), timeout_s=0.2) as s:
        a = await s.send(URL, b"{}", {})
    assert not a.ok and a.response_status is None and a.error is not None and a.error.startswith("timeout")
    assert 150 <= a.duration_ms < 5000

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with _sender(httpx.MockTransport(refuse)) as s:
        a = await s.send(URL, b"{}", {})
    assert not a.ok and a.response_status is None and a.error == "connection failed: connection refused"

    # and over a real socket: a port we hold bound but never listen on refuses for certain
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        async with Sender(allow_private=True) as real:
            a = await real.send(f"http://127.0.0.1:{port}/", b"{}", {})
    assert not a.ok and a.error is not None and a.error.startswith("connection failed")


async def test_a_receivers_control_characters_never_reach_the_attempt() -> None:
    answer = b"bad\x00news\x01\x1b[31m\x7f\r\n\tend" + b"\xff\xfe"
    transport = httpx.MockTransport(lambda _: httpx.Response(500, content=answer))
    async with _sender(transport) as s:
        a = await s.send(URL, b"{}", {})
    assert a.response_body == "bad\ufffdnews\ufffd\ufffd[31m\ufffd\r\n\tend\ufffd\ufffd"
    assert a.as_json()["response_body"] == a.response_body

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused \x00 by \u0085 peer" + "x" * 500, request=request)

    async with _sender(httpx.MockTransport(refuse)) as s:
        a = await s.send(URL, b"{}", {})
    assert a.error is not None and "\x00" not in a.error and "\u0085" not in a.error and len(a.error) <= 250


async def test_a_multibyte_character_cut_at_the_limit_is_dropped_not_garbled() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=b"a" + "é".encode() * 1000))
    async with _sender(transport) as s:
        a = await s.send(URL, b"{}", {})
    assert a.response_body == "a" + "é" * 511 and "\ufffd" not in a.response_body


async def test_a_bad_url_is_a_failed_attempt() -> None:
    async with Sender() as s:
        a = await s.send("http://[::1/", b"{}", {})
    assert not a.ok and a.error is not None


def test_what_is_stored_is_always_printable_utf8() -> None:
    nasty = "a\x00b\x1f\x7f\x85\ud800c\t\n\r" + "z" * 5000
    a = Attempt(at=datetime(2030, 1, 1, tzinfo=UTC), response_status=500, duration_ms=1, error=nasty,
                response_body=nasty)
    stored = a.as_json()
    for text in (stored["error"], stored["response_body"]):
        assert text.startswith("a\ufffdb\ufffd\ufffd\ufffd\ufffdc\t\n\r") and text.encode("utf-8")
    assert len(stored["error"]) == 200 and len(stored["response_body"]) <= BODY_LIMIT
