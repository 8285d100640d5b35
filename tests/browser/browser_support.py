"""Helpers of the browser tests: a merchant's server side (API clients) and its webhook endpoint."""

from __future__ import annotations

import asyncio
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from paygate.services import merchants
from paygate.store.db import make_pool
from tests.e2e.procs import Stack

CARD_OK = {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


@dataclass
class Merchant:
    """A merchant of the stack, with API clients for both of its keys (the "server side" of a shop)."""

    stack: Stack
    merchant_id: str
    email: str
    password: str
    secret_key: str
    publishable_key: str
    sk: httpx.Client = field(init=False)
    pk: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.sk = httpx.Client(base_url=self.stack.api_url, auth=(self.secret_key, ""), timeout=30)
        self.pk = httpx.Client(base_url=self.stack.api_url, auth=(self.publishable_key, ""), timeout=30)

    def close(self) -> None:
        self.sk.close()
        self.pk.close()

    def order(self, amount: int = 5_000, currency: str = "USD", **extra: Any) -> dict[str, Any]:
        resp = self.sk.post("/v1/orders", json={"amount": amount, "currency": currency, **extra})
        assert resp.status_code == 201, resp.text
        order: dict[str, Any] = resp.json()
        return order

    def pay(self, amount: int = 5_000, currency: str = "USD", card: dict[str, Any] | None = None,
            **extra: Any) -> dict[str, Any]:
        """A card payment through the API; declines (402) are returned as their failed payment."""
        body = {"amount": amount, "currency": currency,
                "payment_method": {"type": "card", "card": card or CARD_OK}, **extra}
        resp = self.sk.post("/v1/payments", json=body)
        assert resp.status_code in (201, 402), resp.text
        payment: dict[str, Any] = resp.json() if resp.status_code == 201 else resp.json()["error"]["payment"]
        return payment

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        resp = self.sk.get(path, params=params)
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out


def new_merchant(database_url: str) -> dict[str, str]:
    """What `paygate merchant create --json` does (tests/e2e covers the command itself), in-process: the
    command's interpreter start-up would be most of each browser test's set-up time."""

    async def create() -> dict[str, str]:
        suffix = secrets.token_hex(4)
        name, email = f"Test Merchant {suffix}", f"merchant-{suffix}@example.com"
        password = f"pw-{secrets.token_hex(8)}"
        pool = make_pool(database_url, min_size=1, max_size=1)
        await pool.open()
        try:
            m = await merchants.create(pool, name=name, email=email, password=password)
        finally:
            await pool.close()
        return {"merchant_id": m.merchant_id, "secret_key": m.secret_key, "publishable_key": m.publishable_key,
                "name": name, "email": email, "password": password}

    with ThreadPoolExecutor(1) as pool:  # its own thread, so its own event loop, whatever runs in this one
        return pool.submit(asyncio.run, create()).result()


class Receiver:
    """A merchant's webhook endpoint: records every request and answers with `status` (changeable)."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.status
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Site:
    """A merchant's own web site on another origin than paygate's (another port of 127.0.0.1: a page on a
    public address may not load scripts from loopback, Chromium's Private Network Access rule)."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
