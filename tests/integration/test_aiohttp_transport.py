"""The aiohttp transport under the outbound seams (paygate/aiotransport.py, docs/decisions/0019), over real
loopback sockets: the bank connector's "not sent" versus "maybe applied" split, and the webhook sender's
destination guard (a refusal happens before any connection; redirects are not followed; answers are cut)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import orjson
import pytest

from paygate.acquirers.base import NotSent, OutcomeUnknown
from paygate.acquirers.simbank import SimBank
from paygate.aiotransport import AiohttpTransport
from paygate.domain.webhooks import BODY_LIMIT, DESTINATION_NOT_ALLOWED
from paygate.supervise import free_port
from paygate.webhooks.destinations import guarded_aiohttp
from paygate.webhooks.sender import Sender


class Server:
    """A loopback HTTP/1.1 server of a few lines: it records each connection and each request head."""

    def __init__(self, answer: Callable[[bytes, bytes], Awaitable[bytes | None]]) -> None:
        self.answer, self.connections, self.heads = answer, 0, list[bytes]()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                               if line.startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                out = await self.answer(head, body)
                if out is None:  # read the request, then hang up without a word
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Callable[[bytes, bytes], Awaitable[bytes | None]]) -> AsyncIterator[tuple[Server, int]]:
    server = Server(answer)
    port = free_port()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", port)
    try:
        yield server, port
    finally:
        srv.close()


def http_response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        status, len(body), extra, body)


OPERATION = orjson.dumps({"id": "bop_1", "status": "succeeded", "amount": 100, "captured": True,
                          "capture_id": "bop_2"})


async def approve(head: bytes, body: bytes) -> bytes:
    return http_response(200, OPERATION)


async def hang_up(head: bytes, body: bytes) -> bytes | None:
    return None


async def too_slow(head: bytes, body: bytes) -> bytes:
    await asyncio.sleep(5)
    return http_response(200, OPERATION)


def bank(port: int, timeout_s: float = 3.0) -> SimBank:
    return SimBank(f"http://127.0.0.1:{port}", attempts=2, backoff_base_s=0, timeout_s=timeout_s)


async def test_the_bank_connector_uses_aiohttp_and_reads_the_answer() -> None:
    async with serving(approve) as (server, port), bank(port) as client:
        assert isinstance(client._http._transport, AiohttpTransport)
        for _ in range(3):
            result = await client.capture(key="k1", reference="pay_1", amount=100)
        assert (result.outcome, result.operation_id) == ("succeeded", "bop_1")
        assert server.connections == 1  # kept alive across calls
        head = server.heads[0].lower()
        assert b"idempotency-key: k1" in head and b"content-type: application/json" in head


async def test_nothing_listening_is_not_sent() -> None:
    async with bank(free_port()) as client:
        with pytest.raises(NotSent):
            await client.capture(key="k1", reference="pay_1", amount=100)


async def test_a_hang_up_after_the_request_is_outcome_unknown() -> None:
    async with serving(hang_up) as (server, port), bank(port) as client:
        with pytest.raises(OutcomeUnknown):
            await client.capture(key="k1", reference="pay_1", amount=100)
        assert len(server.heads) == 2  # both attempts arrived: the bank may have acted


async def test_a_read_timeout_is_outcome_unknown() -> None:
    async with serving(too_slow) as (server, port), bank(port, timeout_s=0.2) as client:
        with pytest.raises(OutcomeUnknown):
            await client.capture(key="k1", reference="pay_1", amount=100)
        assert len(server.heads) == 2


async def resolves_to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_the_guard_refuses_a_name_that_resolves_to_a_private_address_before_connecting() -> None:
    async with serving(approve) as (server, port), Sender(resolver=resolves_to_loopback) as s:
        named = await s.send(f"http://hooks.example:{port}/x", b"{}", {})
        literal = await s.send(f"http://127.0.0.1:{port}/x", b"{}", {})
        local = await s.send(f"http://localhost:{port}/x", b"{}", {})
    assert named.error == literal.error == local.error == DESTINATION_NOT_ALLOWED
    assert server.connections == 0


async def test_allowed_sends_connect_to_the_resolved_address_keep_the_name_and_follow_no_redirect() -> None:
    async def redirect(head: bytes, body: bytes) -> bytes:
        return http_response(302, b"", b"location: http://127.0.0.1:1/\r\n")

    async with serving(redirect) as (server, port), Sender(resolver=resolves_to_loopback, allow_private=True) as s:
        a = await s.send(f"http://hooks.example:{port}/x", b'{"a":1}', {"webhook-id": "msg_1"})
    assert a.response_status == 302 and not a.ok
    assert len(server.heads) == 1
    head = server.heads[0].lower()
    assert f"host: hooks.example:{port}".encode() in head and b"webhook-id: msg_1" in head


async def test_a_large_answer_is_cut_and_a_slow_one_times_out() -> None:
    async def large(head: bytes, body: bytes) -> bytes:
        return http_response(200, b"a" * 100_000)

    async with serving(large) as (_, port), Sender(resolver=resolves_to_loopback, allow_private=True) as s:
        a = await s.send(f"http://hooks.example:{port}/x", b"{}", {})
    assert a.ok and a.response_body is not None and len(a.response_body) <= BODY_LIMIT + 1
    async with serving(too_slow) as (_, port), Sender(resolver=resolves_to_loopback, allow_private=True,
                                                       timeout_s=0.2) as s:
        a = await s.send(f"http://hooks.example:{port}/x", b"{}", {})
    assert a.response_status is None and a.error is not None and a.error.startswith("timeout")


async def test_the_senders_direct_send_puts_on_the_wire_what_httpxs_client_over_the_same_transport_did() -> None:
    """The Sender skips httpx's client over aiohttp's transport (docs/decisions/0024): same request head
    and body, byte for byte, as the client it replaced; same answer as read through httpx."""
    async def answer(head: bytes, body: bytes) -> bytes:
        return http_response(503, b'{"busy":true}', b"retry-after: 7\r\n")

    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,abc"}
    async with serving(answer) as (server, port):
        url = f"http://hooks.example:{port}/x?a=1"
        async with Sender(resolver=resolves_to_loopback, allow_private=True) as s:
            assert s._direct is not None
            a = await s.send(url, b'{"a":1}', headers)
        transport = guarded_aiohttp(resolver=resolves_to_loopback, allow_private=True)
        async with httpx.AsyncClient(transport=transport, headers={"user-agent": "paygate"}, trust_env=False) as c:
            r = await c.post(url, content=b'{"a":1}', headers={**headers, "content-type": "application/json"})
        assert r.status_code == 503
    direct, via_httpx = server.heads
    assert direct == via_httpx
    assert a.response_status == 503 and a.retry_after_s == 7.0 and a.response_body == '{"busy":true}'


async def test_the_direct_send_decodes_a_compressed_answer_joins_repeated_retry_afters_and_maps_a_hang_up() -> None:
    text = b'{"ok":' + b"1" * 3000 + b"}"

    async def gzipped(head: bytes, body: bytes) -> bytes:
        extra = b"content-encoding: gzip\r\nretry-after: 5\r\nretry-after: 9\r\n"
        return http_response(429, gzip.compress(text), extra)

    async def garbled(head: bytes, body: bytes) -> bytes:
        return http_response(500, b"not gzip at all", b"content-encoding: gzip\r\n")

    async with Sender(resolver=resolves_to_loopback, allow_private=True) as s:
        async with serving(gzipped) as (_, port):
            a = await s.send(f"http://hooks.example:{port}/x", b"{}", {})
        assert a.response_status == 429 and a.response_body == text[:BODY_LIMIT].decode()
        assert a.retry_after_s is None  # "5, 9", as httpx's Headers.get reads it: no one delay
        async with serving(garbled) as (_, port):
            bad = await s.send(f"http://hooks.example:{port}/x", b"{}", {})
        assert bad.response_status == 500 and bad.error is not None and bad.error.startswith("DecodingError")
        async with serving(hang_up) as (_, port):
            gone = await s.send(f"http://hooks.example:{port}/x", b"{}", {})
        assert gone.response_status is None and gone.error is not None and gone.error.startswith("RemoteProtocolError")
