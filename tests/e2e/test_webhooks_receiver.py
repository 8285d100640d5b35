"""A real webhook receiver for the end-to-end tests (uvicorn on 127.0.0.1, in a thread), and its own tests.

It records every request it gets and answers as a test tells it, per path: a status, headers, a delay
(a slow or hanging receiver). Verification uses the PyPI `standardwebhooks` package, like a merchant.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.e2e.procs import free_port
from tests.polling import wait_for


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request had arrived (before any scripted delay)
    status: int  # what we answered

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def event(self) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(self.body)
        return obj

    def verify(self, secret: str) -> dict[str, Any]:
        """The event, if the signature verifies with `secret` (raises WebhookVerificationError if not)."""
        out: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return out

    def verifies(self, secret: str) -> bool:
        try:
            self.verify(secret)
        except WebhookVerificationError:
            return False
        return True


Script = Callable[[int], Reply]  # n-th request on the path (0-based) -> the answer


class Receiver:
    """`receiver.url("/a")` to register an endpoint; `receiver.on("/a", ...)` to script its answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self._scripts: dict[str, Script] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, *replies: Reply, then: Reply | None = None) -> None:
        """Answer the path's requests with `replies` in order, then with `then` (default 200)."""
        after = then or Reply()
        self.on_call(path, lambda n: replies[n] if n < len(replies) else after)

    def on_call(self, path: str, script: Script) -> None:
        """Answer with `script(n)`, n counting this path's requests from now on."""
        with self._lock:
            self._scripts[path] = script
            self._counts[path] = 0

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int, timeout: float = 30) -> list[Received]:
        """Poll until the path got at least `count` requests; returns them."""
        assert wait_for(lambda: len(self.at(path)) >= count, timeout), (
            f"{path}: {len(self.at(path))} of {count} requests within {timeout}s")
        return self.at(path)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":  # the sender died mid-request (a SIGKILLed worker)
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        with self._lock:
            n = self._counts.get(path, 0)
            self._counts[path] = n + 1
            script = self._scripts.get(path)
            reply = script(n) if script is not None else Reply()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:  # processed on arrival, like a receiver that acts before it answers
            self.received.append(Received(path, headers, body, time.time(), reply.status))
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)  # the receiver being slow is the behaviour under test
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()]})
        await send({"type": "http.response.body", "body": reply.body})

    def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="off", ws="none", loop="asyncio", http="h11",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="webhook-receiver", daemon=True)
        self._thread.start()
        server = self._server
        assert wait_for(lambda: server.started, 10), "the receiver did not start"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


CARD = {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
DECLINED = {"number": "4000000000000002", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


class Client:
    """A merchant's view of the API over HTTP (sync: e2e tests poll, they do not race the loop)."""

    def __init__(self, api_url: str, secret_key: str) -> None:
        self.http = httpx.Client(base_url=api_url, auth=(secret_key, ""), timeout=60)

    def close(self) -> None:
        self.http.close()

    def ok(self, method: str, path: str, body: Any = None, expect: int = 200, **params: Any) -> dict[str, Any]:
        r = self.http.request(method, path, json=body, params=params or None)
        assert r.status_code == expect, (method, path, r.status_code, r.text)
        out: dict[str, Any] = r.json()
        return out

    def pay(self, card: dict[str, Any] | None = None, capture_method: str = "automatic",
            amount: int = 1000) -> dict[str, Any]:
        r = self.http.post("/v1/payments", json={"amount": amount, "currency": "USD", "capture_method": capture_method,
                                                  "payment_method": {"type": "card", "card": card or CARD}})
        assert r.status_code in (201, 402), r.text
        out: dict[str, Any] = r.json()
        return out if r.status_code == 201 else out["error"]["payment"]

    def endpoint(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        return self.ok("POST", "/v1/webhook_endpoints", {"url": url, "enabled_events": events or ["*"]}, 201)

    def deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.ok("GET", "/v1/webhook_deliveries", limit=100, **filters)["data"]
        return data

    def delivery_when(self, condition: Callable[[dict[str, Any]], bool], timeout: float = 30,
                      **filters: Any) -> dict[str, Any]:
        """Poll until exactly one delivery matches `filters` and satisfies `condition`; returns it."""
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [d for d in self.deliveries(**filters) if condition(d)]
            return len(found) == 1

        assert wait_for(check, timeout, interval=0.1), (filters, self.deliveries(**filters))
        return found[0]


def running_receiver() -> Iterator[Receiver]:
    """The body of each module's `receiver` fixture: a started receiver, stopped afterwards."""
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


def test_receiver_records_scripted_answers_and_verifies_standard_webhooks(receiver: Receiver) -> None:
    from paygate.webhooks import signing

    secret = signing.new_secret()
    receiver.on("/flaky", Reply(500), Reply(503, {"retry-after": "2"}))
    body = b'{"id": "evt_1", "object": "event"}'
    headers = signing.headers([secret], "evt_1", int(time.time()), body)
    statuses = [httpx.post(receiver.url("/flaky"), content=body, headers=headers).status_code for _ in range(3)]
    assert statuses == [500, 503, 200]
    got = receiver.wait("/flaky", 3)
    assert [r.status for r in got] == [500, 503, 200]
    assert got[0].verify(secret) == {"id": "evt_1", "object": "event"}
    assert not got[0].verifies(signing.new_secret())
