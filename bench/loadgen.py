"""A small asyncio load generator, the fallback when `wrk` is not installed and cannot be.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) over raw asyncio streams on uvloop to
stay cheap next to the server it measures — httpx would spend more CPU than paygate's API. It runs the
same four scenarios as the Lua scripts and prints the same `BENCH_RESULT {json}` line, so bench/run.py
treats both alike. Each connection is its own coroutine, so scenario 2 chains its three requests per
connection directly.

`--rate R` makes it open-loop (bench scenario 5; Debian has no wrk2): payment arrivals at fixed intervals of
1/R s that never wait for earlier answers. Each arrival takes an idle keep-alive connection or opens one
(at most `--connections`; beyond that it queues), and its latency counts from its *scheduled* time, so a
stalled server shows in the p99 instead of slowing the arrivals down (no coordinated omission).

    python bench/loadgen.py --url http://127.0.0.1:8080 --scenario payments --duration 5 --connections 8 \
        --token t1 --secret sk_test_... [--key K --body B] [--ids FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SPECIAL_CARDS = frozenset({
    "4111111111111111", "4242424242424242", "5555555555554444", "5105105105105100", "4000000000000002",
    "4000000000009995", "4000000000000127", "4000000000000119",
})
_PAYMENT_ID = re.compile(rb'"id":"(pay_[^"]+)"')


def luhn_card(rng: random.Random) -> str:
    """A random Luhn-valid Visa number that is none of the bank's special cards (a fresh account each)."""
    while True:
        digits = [4] + [rng.randint(0, 9) for _ in range(14)]
        total = 0
        for i, d in enumerate(reversed(digits)):
            v = d * 2 if i % 2 == 0 else d
            total += v - 9 if v > 9 else v
        number = "".join(map(str, digits)) + str((10 - total % 10) % 10)
        if number not in SPECIAL_CARDS:
            return number


def card_body(rng: random.Random, amount: int, capture_method: str) -> bytes:
    return json.dumps({
        "amount": amount, "currency": "USD", "capture_method": capture_method,
        "payment_method": {"type": "card", "card": {"number": luhn_card(rng), "exp_month": 12, "exp_year": 2030,
                                                    "cvc": "123"}},
    }, separators=(",", ":")).encode()


# uvicorn closes a keep-alive connection idle for 5 s (its timeout_keep_alive). A request written on it as it
# closes is lost without an answer — a read error that is the generator's, not the server's — so a connection
# idle for longer than this is not reused, and neither is one the server has already closed.
REUSE_IDLE_S = 4.0


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.idle_since = time.perf_counter()

    def reusable(self) -> bool:
        """Safe to send on: not idle past the server's keep-alive, not closed by the server meanwhile."""
        fresh = time.perf_counter() - self.idle_since < REUSE_IDLE_S
        return fresh and not (self.reader is not None and self.reader.at_eof())

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None
                      ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**20)
        assert self.reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                *(f"{k}: {v}" for k, v in headers.items())]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        got = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        data = await self.reader.readexactly(int(got.get("content-length", "0")))
        self.idle_since = time.perf_counter()
        return status, got, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_us: list[float] = field(default_factory=list)
    socket_errors: Counter[str] = field(default_factory=Counter)
    extra: Counter[str] = field(default_factory=Counter)


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.args = args
        self.tally = Tally()
        self.ids: list[str] = []
        if args.ids:
            with open(args.ids) as fh:
                self.ids = [line.strip() for line in fh if line.strip()]
        self.seq = 0

    def headers(self, key: str | None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.args.secret}", "Content-Type": "application/json"}
        if key is not None:
            h["Idempotency-Key"] = key
        return h

    def new_key(self, conn_no: int) -> str:
        self.seq += 1
        return f"{self.args.token}-p{conn_no}-{self.seq}"

    async def call(self, conn: HttpConnection, method: str, path: str, headers: dict[str, str],
                   body: bytes | None, since: float | None = None) -> tuple[int, dict[str, str], bytes] | None:
        """One request; its latency from `since` (an open-loop arrival's scheduled time) or from now."""
        started = time.perf_counter() if since is None else since
        try:
            status, got, data = await asyncio.wait_for(conn.request(method, path, headers, body), 10)
        except TimeoutError:
            self.tally.socket_errors["timeout"] += 1
            conn.close()
            return None
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.tally.socket_errors["read"] += 1
            conn.close()
            return None
        self.tally.latencies_us.append((time.perf_counter() - started) * 1e6)
        self.tally.statuses[status] += 1
        return status, got, data

    async def connection(self, conn_no: int, deadline: float) -> None:
        rng = random.Random(f"{self.args.token}-{conn_no}")
        conn = HttpConnection(self.host, self.port)
        scenario = self.args.scenario
        try:
            while time.monotonic() < deadline:
                if scenario == "payments":
                    r = await self.call(conn, "POST", "/v1/payments", self.headers(self.new_key(conn_no)),
                                        card_body(rng, rng.randint(100, 9999), "automatic"))
                    if r is not None and r[0] != 201:
                        self.tally.extra["unexpected"] += 1
                elif scenario == "refund_flow":
                    await self.refund_flow(conn, conn_no, rng)
                elif scenario == "replay":
                    r = await self.call(conn, "POST", "/v1/payments", self.headers(self.args.key),
                                        self.args.body.encode())
                    if r is not None:
                        ok = r[0] == 201 and r[1].get("idempotent-replayed") == "true"
                        self.tally.extra["replayed" if ok else "unexpected"] += 1
                else:
                    r = await self.call(conn, "GET", f"/v1/payments/{rng.choice(self.ids)}", self.headers(None), None)
                    if r is not None and r[0] != 200:
                        self.tally.extra["unexpected"] += 1
        finally:
            conn.close()

    async def refund_flow(self, conn: HttpConnection, conn_no: int, rng: random.Random) -> None:
        r = await self.call(conn, "POST", "/v1/payments", self.headers(self.new_key(conn_no)),
                            card_body(rng, 1000, "manual"))
        match = _PAYMENT_ID.search(r[2]) if r is not None else None
        if r is None or r[0] != 201 or match is None or b'"status":"authorized"' not in r[2]:
            self.tally.extra["unexpected"] += r is not None
            return
        pid = match.group(1).decode()
        r = await self.call(conn, "POST", f"/v1/payments/{pid}/capture", self.headers(self.new_key(conn_no)), b"{}")
        if r is None or r[0] != 200 or b'"status":"captured"' not in r[2]:
            self.tally.extra["unexpected"] += r is not None
            return
        body = json.dumps({"payment_id": pid, "amount": 300}).encode()
        r = await self.call(conn, "POST", "/v1/refunds", self.headers(self.new_key(conn_no)), body)
        if r is None or r[0] != 201 or b'"object":"refund"' not in r[2]:
            self.tally.extra["unexpected"] += r is not None
            return
        self.tally.extra["transactions"] += 1

    async def open_loop(self, started: float) -> None:
        """`rate` payments per second for `duration` seconds, each on an idle connection (or a new one)."""
        rng = random.Random(f"{self.args.token}-open")
        idle: list[HttpConnection] = []
        slots = asyncio.Semaphore(self.args.connections)
        total = int(self.args.duration * self.args.rate)

        async def arrival(n: int, scheduled: float) -> None:
            async with slots:
                conn = idle.pop() if idle else HttpConnection(self.host, self.port)
                if not conn.reusable():  # see REUSE_IDLE_S
                    conn.close()
                r = await self.call(conn, "POST", "/v1/payments", self.headers(f"{self.args.token}-o{n}"),
                                    card_body(rng, rng.randint(100, 9999), "automatic"), since=scheduled)
                if r is not None and r[0] != 201:
                    self.tally.extra["unexpected"] += 1
                idle.append(conn)

        tasks = []
        for n in range(total):
            scheduled = started + n / self.args.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(arrival(n, scheduled)))
        await asyncio.gather(*tasks)
        for conn in idle:
            conn.close()

    async def run(self) -> dict[str, object]:
        started = time.monotonic()
        deadline = started + self.args.duration
        if self.args.rate:
            await self.open_loop(time.perf_counter())
        else:
            await asyncio.gather(*(self.connection(i, deadline) for i in range(self.args.connections)))
        elapsed = time.monotonic() - started
        lat = sorted(self.tally.latencies_us)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(len(lat) * p / 100))] if lat else 0.0

        return {
            "generator": "python", "duration_s": elapsed, "requests": len(lat),
            "statuses": {str(k): v for k, v in self.tally.statuses.items()},
            "socket_errors": {k: self.tally.socket_errors[k] for k in ("connect", "read", "write", "timeout")},
            "latency_us": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": lat[-1] if lat else 0.0,
                           "mean": sum(lat) / len(lat) if lat else 0.0},
            "extra": {k: self.tally.extra[k] for k in ("unexpected", "replayed", "transactions")},
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--scenario", required=True, choices=["payments", "refund_flow", "replay", "retrieve"])
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--token", required=True, help="prefix of this run's idempotency keys")
    p.add_argument("--secret", required=True)
    p.add_argument("--key", help="replay: the idempotency key")
    p.add_argument("--body", help="replay: the exact body")
    p.add_argument("--ids", help="retrieve: file of payment ids")
    p.add_argument("--rate", type=float, default=0.0,
                   help="payments: open loop at this many arrivals per second (connections: the most open)")
    args = p.parse_args(argv)
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("load is only ever sent to this machine (127.0.0.1)")
    if args.rate and (args.scenario != "payments" or not 0 < args.rate <= 1000):
        p.error("--rate is for the payments scenario, at most 1000 per second")
    return args


def main() -> None:
    args = parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(Generator(args).run())
    else:
        result = uvloop.run(Generator(args).run())
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
