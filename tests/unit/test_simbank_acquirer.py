"""The simulator's acquirer (acquirers/simbank.py) over httpx.MockTransport: retries with the same key,
the exact split between "certainly not sent" and "outcome unknown" that failover relies on, the status
mapping, per-kind resolution, and callback authentication."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from paygate.acquirers.base import (
    AcquirerResult,
    BadSignature,
    MalformedCallback,
    NotSent,
    OpKind,
    OutcomeUnknown,
    Rejected,
    Unavailable,
)
from paygate.acquirers.simbank import DEADLINE_GRACE_S, BankUnavailable, SimBank
from paygate.webhooks import standard

SECRET = "whsec_" + "c2ltYmFuay10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5"

CARD = {
    "type": "card",
    "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
}


def _op(status: str, failure_code: str | None = None, captured: bool = False) -> dict[str, Any]:
    return {
        "id": "bop_01",
        "object": "bank_operation",
        "reference": "pay_1",
        "type": "authorization",
        "status": status,
        "amount": 100,
        "captured": captured,
        "failure_code": failure_code,
    }


class Recorder:
    """A scripted bank: each request gets the next response (or raises the next exception)."""

    def __init__(self, *script: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    def client(self, attempts: int = 3) -> SimBank:
        return SimBank("http://bank.test", name="alpha", webhook_secret=SECRET, attempts=attempts,
                       backoff_base_s=0.001, transport=httpx.MockTransport(self))

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]


async def _authorize(client: SimBank, key: str = "k1") -> AcquirerResult:
    return await client.authorize(
        key=key,
        reference="pay_1",
        amount=100,
        currency="USD",
        payment_method=CARD,
        capture=False,
        callback_url=None,
    )


async def test_retries_500_then_succeeds_with_same_key() -> None:
    bank = Recorder(httpx.Response(500), httpx.Response(503), httpx.Response(200, json=_op("succeeded")))
    async with bank.client() as client:
        result = await _authorize(client, key="idem-1")
    assert result == AcquirerResult("succeeded", None, "bop_01", False)
    assert bank.keys == ["idem-1", "idem-1", "idem-1"]
    bodies = [orjson.loads(r.content) for r in bank.requests]
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["payment_method"] == CARD and bodies[0]["callback_url"] is None


async def test_timeouts_give_outcome_unknown_after_all_attempts() -> None:
    bank = Recorder(httpx.ReadTimeout("slow"))
    async with bank.client(attempts=4) as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.capture(key="cap-1", reference="pay_1", amount=50)
    assert info.value.maybe_applied
    assert len(bank.requests) == 4
    assert set(bank.keys) == {"cap-1"}


@pytest.mark.parametrize("refusal", [httpx.ConnectError("refused"), httpx.ConnectTimeout("no SYN-ACK"),
                                     httpx.PoolTimeout("no free connection")])
async def test_refused_on_every_attempt_is_certainly_not_sent(refusal: Exception) -> None:
    bank = Recorder(refusal)
    async with bank.client(attempts=3) as client:
        with pytest.raises(NotSent) as info:
            await _authorize(client)
    assert not info.value.maybe_applied
    assert len(bank.requests) == 3  # it was retried, and still never got there


@pytest.mark.parametrize(
    "script",
    [
        (httpx.Response(500),),  # a 5xx may follow an applied operation (a lost answer)
        (httpx.Response(503),),
        (httpx.ReadTimeout("slow"),),
        (httpx.WriteTimeout("stuck"),),  # part of the request may be with the bank
        (httpx.WriteError("broken pipe"),),
        (httpx.RemoteProtocolError("closed after the request"),),
        (httpx.ReadError("reset after sending"),),
        # refused only later: the first attempt may have been applied
        (httpx.ReadTimeout("slow"), httpx.ConnectError("refused")),
        (httpx.ConnectError("refused"), httpx.Response(502), httpx.ConnectError("refused")),
    ],
)
async def test_anything_that_may_have_reached_the_bank_is_outcome_unknown(
    script: tuple[httpx.Response | Exception, ...],
) -> None:
    bank = Recorder(*script)
    async with bank.client(attempts=3) as client:
        with pytest.raises(OutcomeUnknown):
            await client.void(key="v1", reference="pay_1")
    assert len(bank.requests) == 3


async def test_unreadable_2xx_is_outcome_unknown_not_a_guess() -> None:
    bank = Recorder(httpx.Response(200, content=b"<html>"))
    async with bank.client() as client:
        with pytest.raises(OutcomeUnknown):
            await _authorize(client)


async def test_a_decline_is_a_final_answer_not_an_error() -> None:
    bank = Recorder(httpx.Response(200, json=_op("failed", "card_declined")))
    async with bank.client() as client:
        result = await _authorize(client)
    assert result == AcquirerResult("failed", "card_declined", "bop_01") and result.final
    assert len(bank.requests) == 1


def test_the_error_tree() -> None:
    assert issubclass(NotSent, Unavailable) and issubclass(OutcomeUnknown, Unavailable)
    assert not issubclass(NotSent, OutcomeUnknown) and not issubclass(OutcomeUnknown, NotSent)
    assert not issubclass(Rejected, Unavailable)


class HonoursDeadlines(httpx.AsyncBaseTransport):
    """A bank that takes 30 s to answer, behind a transport that, like httpcore, ends the request at the
    deadlines httpx put on it (`request.extensions["timeout"]`, from the client's `timeout=`) with a
    ReadTimeout. MockTransport alone ignores them, so a slow handler would simply be waited for."""

    def __init__(self) -> None:
        self.deadlines: list[dict[str, float | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadlines: dict[str, float | None] = request.extensions["timeout"]
        self.deadlines.append(deadlines)

        async def slow(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            return httpx.Response(200, json=_op("succeeded"))

        try:
            return await asyncio.wait_for(httpx.MockTransport(slow).handle_async_request(request), deadlines["read"])
        except TimeoutError:
            raise httpx.ReadTimeout("read deadline", request=request) from None


async def test_the_clients_timeout_ends_each_slow_attempt() -> None:
    transport = HonoursDeadlines()
    started = time.monotonic()
    async with SimBank(
        "http://bank.test", timeout_s=0.05, attempts=2, backoff_base_s=0, transport=transport
    ) as client:
        with pytest.raises(OutcomeUnknown):
            await client.refund(key="r1", reference="pay_1", amount=10)
    # every attempt carried the client's timeout_s (not httpx's 5 s default) and ended there
    assert transport.deadlines == [{"connect": 0.05, "read": 0.05, "write": 0.05, "pool": 0.05}] * 2
    assert time.monotonic() - started < 2.0


class NeverAnswers(httpx.AsyncBaseTransport):
    """A request that never ends and ignores httpx's per-phase deadlines, as aiohttp does for a write the
    bank never takes (it has no write timeout) or an answer that trickles in a byte at a time."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_an_attempt_that_never_ends_is_cut_at_the_deadline_and_may_have_been_applied() -> None:
    transport = NeverAnswers()
    started = time.monotonic()
    async with SimBank(
        "http://bank.test", timeout_s=0.2, attempts=2, backoff_base_s=0, transport=transport
    ) as client:
        with pytest.raises(OutcomeUnknown):  # never NotSent: the bank may have received it
            await client.authorize(key="k1", reference="pay_1", amount=100, currency="USD", payment_method=CARD,
                                   capture=True, callback_url=None)
        with pytest.raises(BankUnavailable):  # inspection calls are bounded the same way
            await client.operations("pay_1")
    assert transport.calls == 4
    assert time.monotonic() - started < 4 * (0.2 + DEADLINE_GRACE_S) + 1.0


class ConnectsTooSlowly(httpx.AsyncBaseTransport):
    """A bank that never accepts the connection, behind a transport that ends the connect at httpx's
    `connect` deadline with a ConnectTimeout, as httpcore and paygate's aiohttp transport do."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(request.extensions["timeout"]["connect"])
        raise httpx.ConnectTimeout("connect deadline", request=request)


async def test_a_connect_timeout_is_still_certainly_not_sent_under_the_overall_deadline() -> None:
    # the overall deadline must not pre-empt the connect timeout, which failover reads as "go elsewhere now"
    async with SimBank(
        "http://bank.test", timeout_s=0.2, attempts=2, backoff_base_s=0, transport=ConnectsTooSlowly()
    ) as client:
        with pytest.raises(NotSent):
            await client.refund(key="r1", reference="pay_1", amount=10)


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (_op("succeeded", captured=True), AcquirerResult("succeeded", None, "bop_01", True)),
        (_op("failed", "card_declined"), AcquirerResult("failed", "card_declined", "bop_01", False)),
        (_op("failed", "insufficient_funds"), AcquirerResult("failed", "insufficient_funds", "bop_01", False)),
        (_op("pending"), AcquirerResult("pending", None, "bop_01", False)),
        # a code paygate could not store (NUL: PostgreSQL refuses it) is no code: processing_error later
        (_op("failed", "card_declined\u0000"), AcquirerResult("failed", None, "bop_01", False)),
        (_op("failed", "x" * 101), AcquirerResult("failed", None, "bop_01", False)),
    ],
)
async def test_status_mapping(op: dict[str, Any], expected: AcquirerResult) -> None:
    bank = Recorder(httpx.Response(200, json=op))
    async with bank.client() as client:
        assert await _authorize(client) == expected
    assert len(bank.requests) == 1


async def test_4xx_is_a_bug_not_an_outcome() -> None:
    err = {"error": {"type": "invalid_request_error", "code": "parameter_invalid"}}
    bank = Recorder(httpx.Response(400, json=err))
    async with bank.client() as client:
        with pytest.raises(Rejected) as info:
            await _authorize(client)
    assert info.value.status_code == 400
    assert len(bank.requests) == 1  # no retry of a refused request


async def test_422_key_reuse_is_a_bank_error() -> None:
    bank = Recorder(httpx.Response(422, json={"error": {"code": "idempotency_key_reused"}}))
    async with bank.client() as client:
        with pytest.raises(Rejected):
            await client.capture(key="k", reference="pay_1", amount=1)


async def test_inquire_found_and_tombstone_and_unreachable() -> None:
    found = {"object": "bank_inquiry", "found": True, "operation": _op("succeeded", captured=True)}
    bank = Recorder(httpx.Response(200, json=found))
    async with bank.client() as client:
        assert await client.inquire(key="k9") == AcquirerResult("succeeded", None, "bop_01", True)
    req = bank.requests[0]
    assert req.url.path == "/v1/inquiries"
    assert orjson.loads(req.content) == {"idempotency_key": "k9"}
    assert req.headers["idempotency-key"] == "k9"

    tomb = {"found": False, "operation": {**_op("failed", "processing_error"), "type": None}}
    bank = Recorder(httpx.Response(500), httpx.Response(200, json=tomb))
    async with bank.client() as client:
        assert await client.inquire(key="k9") == AcquirerResult("failed", "processing_error", "bop_01")

    # an inquiry that never got there says nothing about the operation: unknown, never "not sent"
    bank = Recorder(httpx.ConnectError("down"))
    async with bank.client(attempts=2) as client:
        with pytest.raises(OutcomeUnknown):
            await client.inquire(key="k9")
    assert len(bank.requests) == 2


async def test_a_weird_status_is_outcome_unknown() -> None:
    bank = Recorder(httpx.Response(200, json={"status": "weird"}))
    async with bank.client() as client:
        with pytest.raises(OutcomeUnknown):
            await _authorize(client)


@pytest.mark.parametrize(
    ("kind", "path", "body"),
    [
        (OpKind.AUTHORIZATION, "/v1/inquiries", {"idempotency_key": "k"}),
        (OpKind.CAPTURE, "/v1/captures", {"reference": "pay_1", "amount": 5}),
        (OpKind.VOID, "/v1/voids", {"reference": "pay_1"}),
        (OpKind.EXPIRY, "/v1/voids", {"reference": "pay_1"}),
        (OpKind.REFUND, "/v1/refunds", {"reference": "pay_1", "amount": 5}),
    ],
)
async def test_resolve_asks_or_resends_with_the_same_key(kind: OpKind, path: str, body: dict[str, Any]) -> None:
    answer = {"operation": _op("succeeded")} if kind is OpKind.AUTHORIZATION else _op("succeeded")
    bank = Recorder(httpx.Response(200, json=answer))
    async with bank.client() as client:
        result = await client.resolve(kind=kind, key="k", reference="pay_1", amount=5)
    assert result.outcome == "succeeded"
    assert [r.url.path for r in bank.requests] == [path]
    assert orjson.loads(bank.requests[0].content) == body and bank.keys == ["k"]


def _callback(event_id: str = "bevt_1") -> bytes:
    return orjson.dumps({"id": event_id, "type": "operation.failed", "created_at": "2026-12-01T00:00:00Z",
                         "data": {"reference": "pay_1", "operation": "capture", "amount": 5,
                                  "failure_code": "payment_declined"}})


def test_parse_callback_authenticates_then_parses() -> None:
    client = SimBank("http://bank.test", name="alpha", webhook_secret=SECRET)
    body, now = _callback(), int(time.time())
    headers = {"webhook-id": "bevt_1", "webhook-timestamp": str(now),
               "webhook-signature": standard.sign(SECRET, "bevt_1", now, body)}
    event = client.parse_callback(headers, body, now)
    assert (event.acquirer, event.id, event.outcome, event.operation, event.failure_code) == (
        "alpha", "bevt_1", "failed", "capture", "payment_declined")
    with pytest.raises(BadSignature):
        client.parse_callback({**headers, "webhook-signature": "v1,AAAA"}, body, now)
    with pytest.raises(BadSignature):  # stale
        client.parse_callback(headers, body, now + 301)
    with pytest.raises(BadSignature):
        client.parse_callback({}, body, now)
    junk = b'{"id": "bevt_2", "type": "operation.weird"}'
    junk_headers = {"webhook-id": "bevt_2", "webhook-timestamp": str(now),
                    "webhook-signature": standard.sign(SECRET, "bevt_2", now, junk)}
    with pytest.raises(MalformedCallback):
        client.parse_callback(junk_headers, junk, now)


async def test_request_shapes_and_no_card_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    bank = Recorder(httpx.Response(500), httpx.Response(200, json=_op("succeeded")))
    async with bank.client() as client:
        with caplog.at_level("DEBUG"):
            await _authorize(client, key="abc")
        await client.capture(key="c", reference="pay_1", amount=7)
        await client.void(key="v", reference="pay_1")
        await client.refund(key="r", reference="pay_1", amount=3)
    assert caplog.records  # the 500 was logged ...
    assert all("4111111111111111" not in r.getMessage() and "cvc" not in r.getMessage() for r in caplog.records)
    paths = [r.url.path for r in bank.requests]
    assert paths == ["/v1/authorizations"] * 2 + ["/v1/captures", "/v1/voids", "/v1/refunds"]
    assert [orjson.loads(r.content) for r in bank.requests[2:]] == [
        {"reference": "pay_1", "amount": 7},
        {"reference": "pay_1"},
        {"reference": "pay_1", "amount": 3},
    ]


async def test_inspection_calls() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/operations":
            assert request.url.params["reference"] == "pay_1"
            return httpx.Response(200, json={"object": "list", "data": [_op("succeeded")]})
        assert request.url.path == "/v1/cards/4242424242424242"
        return httpx.Response(200, json={"available": 1, "held": 2, "captured": 3, "refunded": 4})

    bank = Recorder(handler)
    async with bank.client() as client:
        assert (await client.operations("pay_1"))[0]["id"] == "bop_01"
        assert (await client.card("4242424242424242"))["held"] == 2

    bank = Recorder(httpx.ConnectError("down"))
    async with bank.client(attempts=2) as client:
        with pytest.raises(BankUnavailable):
            await client.operations("pay_1")
