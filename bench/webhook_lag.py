"""Webhook delivery lag: how long from an event's creation until the merchant's receiver has it?

Given a running stack (API URL and a merchant's secret key), the script runs its own receiver (a separate
process, so that creating payments does not delay its clock readings), registers it as a webhook endpoint
for `payment.captured`, creates N card payments (automatic capture) with bounded concurrency, and waits
until every event has arrived. Lag = receive time - the event's `created_at` (same machine, same clock).
It prints p50/p90/p99/max, duplicates, and verifies every signature with `standardwebhooks`. The endpoint
is deleted at the end. It starts no paygate process itself.

Example (a fresh database, own ports, two worker processes):

    export PAYGATE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/paygate_bench_wh
    export PAYGATE_BANK_URL=http://127.0.0.1:18787 PAYGATE_PUBLIC_URL=http://127.0.0.1:18080
    paygate migrate
    paygate bank --port 18787 & paygate api --port 18080 --workers 2 &
    paygate worker & paygate worker &
    SK=$(paygate merchant create --name B --email b@example.com --password bench-password --json | jq -r .secret_key)
    python bench/webhook_lag.py --api $PAYGATE_PUBLIC_URL --secret-key $SK --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import sys
import time
from datetime import datetime
from typing import Any

import httpx


def _card(i: int) -> dict[str, Any]:
    """A Luhn-valid card of its own per payment: the simulator approves it, and no card's balance runs out."""
    digits = [int(d) for d in f"49{time.time_ns() % 10**8:08d}{i % 10**5:05d}"]  # 15 digits + check digit
    total = sum(d if k % 2 else (d * 2 - 9 if d * 2 > 9 else d * 2) for k, d in enumerate(reversed(digits)))
    number = "".join(map(str, digits)) + str((10 - total % 10) % 10)
    return {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}


# --- the receiver (its own process) -------------------------------------------------------------------

def _serve(sock: socket.socket) -> None:
    """Minimal HTTP/1.1 with keep-alive: POST records (arrival time, headers, body) and answers 200;
    GET /_count and GET /_dump report what arrived."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    got: list[dict[str, Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.time()
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if request_line.startswith("GET /_count"):
                    out = str(len(got)).encode()
                elif request_line.startswith("GET /_dump"):
                    out = json.dumps(got).encode()
                else:
                    got.append({"at": now, "headers": headers, "body": body.decode()})
                    out = b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(out), out))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- the load and the measurement ---------------------------------------------------------------------

def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.receiver_host, args.receiver_port))
    port = sock.getsockname()[1]
    receiver = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    receiver.start()
    sock.close()
    recv_url = f"http://{args.receiver_host}:{port}"
    api = httpx.AsyncClient(base_url=args.api, auth=(args.secret_key, ""), timeout=60,
                            limits=httpx.Limits(max_connections=args.concurrency))
    local = httpx.AsyncClient(base_url=recv_url, timeout=30)
    endpoint: dict[str, Any] | None = None
    try:
        r = await api.post("/v1/webhook_endpoints", json={"url": f"{recv_url}/hook",
                                                          "enabled_events": ["payment.captured"]})
        r.raise_for_status()
        endpoint = r.json()

        sem = asyncio.Semaphore(args.concurrency)
        answered: dict[str, float] = {}  # payment id -> when its 201 arrived (after the commit)

        async def pay(i: int) -> None:
            async with sem:
                resp = await api.post("/v1/payments", json={"amount": 100 + i, "currency": "USD",
                                                            "payment_method": {"type": "card", "card": _card(i)}})
                resp.raise_for_status()
                answered[resp.json()["id"]] = time.time()

        started = time.monotonic()
        await asyncio.gather(*(pay(i) for i in range(args.count)))
        created_s = time.monotonic() - started

        deadline = time.monotonic() + args.timeout
        while int((await local.get("/_count")).text) < args.count:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        all_in_s = time.monotonic() - started
        dump = (await local.get("/_dump")).json()
        attempts_at = await _first_attempts(api, endpoint["id"])
    finally:
        if endpoint is not None:
            await api.delete(f"/v1/webhook_endpoints/{endpoint['id']}")
        await api.aclose()
        await local.aclose()
        receiver.kill()
        receiver.join()

    from standardwebhooks.webhooks import Webhook

    webhook = Webhook(endpoint["secret"])
    first: dict[str, float] = {}
    lags: list[float] = []
    queued: list[float] = []  # event created -> the worker starts the POST (commit, NOTIFY, claim)
    in_api: list[float] = []  # event created -> the API's 201 arrived: an upper bound of the commit's share
    after_api: list[float] = []  # the API's 201 arrived -> the receiver has the event (< 0: webhook first)
    bad = 0
    for item in dump:
        try:
            event = webhook.verify(item["body"], item["headers"])
        except Exception:
            bad += 1
            continue
        if event["id"] in first:
            continue
        first[event["id"]] = item["at"]
        lags.append((item["at"] - _ts(event["created_at"])) * 1000)
        paid_at = answered.get(event["data"]["object"]["id"])
        if paid_at is not None:
            in_api.append((paid_at - _ts(event["created_at"])) * 1000)
            after_api.append((item["at"] - paid_at) * 1000)
        if event["id"] in attempts_at:
            queued.append((attempts_at[event["id"]] - _ts(event["created_at"])) * 1000)
    lags.sort()
    queued.sort()
    in_api.sort()
    after_api.sort()
    return {
        "events": args.count,
        "payments_created": len(answered),
        "received_requests": len(dump),
        "distinct_events": len(first),
        "duplicates": len(dump) - len(first) - bad,
        "bad_signatures": bad,
        "create_s": round(created_s, 2),
        "payments_per_s": round(len(answered) / created_s, 1),
        "all_delivered_after_s": round(all_in_s, 2),
        "lag_ms": {
            "p50": round(_pct(lags, 50), 1), "p90": round(_pct(lags, 90), 1), "p99": round(_pct(lags, 99), 1),
            "max": round(lags[-1], 1), "mean": round(statistics.fmean(lags), 1),
        } if lags else None,
        "created_to_api_answer_ms": {
            "p50": round(_pct(in_api, 50), 1), "p99": round(_pct(in_api, 99), 1),
        } if in_api else None,
        "api_answer_to_received_ms": {
            "p50": round(_pct(after_api, 50), 1), "p99": round(_pct(after_api, 99), 1),
        } if after_api else None,
        "created_to_send_start_ms": {
            "p50": round(_pct(queued, 50), 1), "p99": round(_pct(queued, 99), 1),
        } if queued else None,
    }


async def _first_attempts(api: httpx.AsyncClient, endpoint_id: str) -> dict[str, float]:
    """event id -> when the worker started its first attempt (from GET /v1/webhook_deliveries)."""
    out: dict[str, float] = {}
    after: str | None = None
    while True:
        params: dict[str, Any] = {"endpoint_id": endpoint_id, "limit": 100}
        if after:
            params["starting_after"] = after
        page = (await api.get("/v1/webhook_deliveries", params=params)).json()
        for d in page["data"]:
            if d["attempts"]:
                out[d["event_id"]] = _ts(d["attempts"][0]["at"])
        if not page["has_more"]:
            return out
        after = page["data"][-1]["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", required=True, help="paygate API base URL")
    parser.add_argument("--secret-key", required=True, help="a merchant's sk_test_ key")
    parser.add_argument("--count", type=int, default=1000, help="payments (= payment.captured events)")
    parser.add_argument("--concurrency", type=int, default=32, help="payments created at once")
    parser.add_argument("--receiver-host", default="127.0.0.1")
    parser.add_argument("--receiver-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for every event")
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["distinct_events"] == result["events"] and not result["bad_signatures"] else 1)


if __name__ == "__main__":
    main()
