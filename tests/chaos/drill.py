"""The chaos drill (`paygate drill` runs it from a source checkout; tests/chaos/test_drill.py runs it
short): it proves the first promise — never charge twice, never lose a payment,
never lie about state — while processes are SIGKILLed and the bank misbehaves.

It creates a throwaway database on a local PostgreSQL, starts one simulated bank per acquirer (`--acquirers
alpha,beta` by default: with failures, lost responses and latency past paygate's timeout on every one), the
API and two workers as separate processes, drives a mix of payments from concurrent clients that retry with
the same idempotency keys, kills the API and workers at random and SIGKILLs one bank mid-run (restarted a
little later: payments fail over meanwhile), lets everything settle, then checks every payment against
EVERY bank's own records (decision 0017): at most one successful authorization per payment summed over the
banks, and at the payment's own acquirer; amounts equal to paygate's; no hold left; a challenge-card payment (§15,
answered through the bank's real page) authorized only after its challenge passed. It prints the counts
and exits non-zero on any violation. Everything targets 127.0.0.1 and stops by itself (also on SIGTERM
or Ctrl-C: processes stopped, database dropped). The processes run in production, with fresh random
secrets, as a deployment would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import psycopg
from standardwebhooks.webhooks import Webhook

from paygate import serve_secrets, sqlmigrate
from paygate.domain.cards import luhn_valid
from paygate.simbank import app as simbank_app
from paygate.simbank.config import schema_for
from paygate.store import migrate
from paygate.supervise import Process, free_port, stop_all

# (number, exp_month, exp_year, cvc) of cards the bank declines; approved ones are made fresh per payment
DECLINING = [("4000000000000002", 12, 2031, "123"), ("4000000000009995", 12, 2031, "123")]
# §15: the card whose holder must pass the bank's challenge first (one account at the bank: small amounts)
CHALLENGE = ("4000000000003220", 12, 2031, "123")


def fresh_card(rng: random.Random) -> tuple[str, int, int, str]:
    """A random Luhn-valid Visa number: "any other Luhn-valid number" at the bank, with its own balance."""
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    return body + check, 12, 2031, "123"


@dataclass
class DrillConfig:
    server_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    payments: int = 300
    clients: int = 8
    kill_every_s: tuple[float, float] = (1.5, 4.0)
    failure_rate: float = 0.05
    lost_rate: float = 0.05
    latency_ms: str = "0-1200"  # with a 1 s timeout: some calls hang past it
    bank_timeout_s: float = 1.0
    settle_timeout_s: float = 240.0
    seed: int | None = None
    keep_database: bool = False
    # §18: the drill ends with a settlement and a reconciliation; with `discrepancies` the final batch has one
    # dropped, one adjusted and one extra line, and the reconciliation must find exactly those three
    discrepancies: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    acquirers: tuple[str, ...] = ("alpha", "beta")
    bank_down_s: float = 10.0  # how long the killed bank stays down before its restart (outlasting API restarts)


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass
class Ledger:
    """What the clients were told, per idempotency key."""

    created: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # key -> payment ids
    refunds: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # key -> refund ids
    responses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    unanswered: int = 0
    challenges: Counter[str] = field(default_factory=Counter)  # §15: right / wrong / cancel
    returned: int = 0  # challenges whose browser came back to paygate (the others: the callback alone)


class Receiver:
    """The merchant's webhook endpoint: verifies every delivery and remembers which event each id carried."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.seen: dict[str, set[str]] = defaultdict(set)  # webhook-id -> (type|object id) carried
        self.deliveries = 0
        self.bad_signatures = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = b"204 No Content"
                try:
                    assert self.secret is not None
                    Webhook(self.secret).verify(body, headers)
                    event = orjson.loads(body)
                    self.seen[headers["webhook-id"]].add(f"{event['type']}|{event['data']['object']['id']}")
                    self.deliveries += 1
                except Exception:
                    self.bad_signatures += 1
                    status = b"400 Bad Request"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


class Drill:
    def __init__(self, cfg: DrillConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.db_name = f"paygate_drill_{secrets.token_hex(4)}"
        self.db_url = _with_db(cfg.server_url, self.db_name)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.bank_urls = {name: f"http://127.0.0.1:{free_port()}" for name in cfg.acquirers}
        self.bank_url = next(iter(self.bank_urls.values()))
        self.told = Ledger()
        self.receiver = Receiver()
        self.procs: dict[str, Process] = {}
        self.kills: Counter[str] = Counter()
        # work running in threads (starting, killing processes): waited for before the teardown, so that
        # a cancelled drill never starts a process after it stopped them all
        self.busy: set[asyncio.Future[None]] = set()
        self.stop_killing = asyncio.Event()
        self.secret_key = ""

    # -- set-up -------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYGATE_")}
        env.update({
            "PAYGATE_DATABASE_URL": self.db_url, "PAYGATE_BANK_URL": self.bank_url,
            "PAYGATE_ACQUIRERS": ",".join(f"{n}={u}" for n, u in self.bank_urls.items()),
            # a bank down for a few seconds trips its breaker quickly, and is probed again soon after
            "PAYGATE_ACQUIRER_TRIP_AFTER": "3", "PAYGATE_ACQUIRER_COOLDOWN_S": "2",
            "PAYGATE_PUBLIC_URL": self.api_url, "PAYGATE_BANK_FAILURE_RATE": str(self.cfg.failure_rate),
            "PAYGATE_BANK_LOST_RATE": str(self.cfg.lost_rate), "PAYGATE_BANK_LATENCY_MS": self.cfg.latency_ms,
            "PAYGATE_BANK_TIMEOUT_S": str(self.cfg.bank_timeout_s), "PAYGATE_IDEMPOTENCY_LOCK_S": "5",
            "PAYGATE_WEBHOOK_RETRY_SCHEDULE": "0,1,1,2,2,3,3,5", "PAYGATE_BANK_UPI_DELAY_MS": "100-300",
            "PAYGATE_LOG_LEVEL": "warning", "PAYGATE_DB_POOL_MAX": "8",
            # §15: a challenge the drill could not answer (its pages kept failing) times out before the end
            "PAYGATE_AUTHENTICATION_TTL": "60",
            # the receiver listens on 127.0.0.1: a destination production refuses unless allowed
            "PAYGATE_WEBHOOK_ALLOW_PRIVATE": "true", **serve_secrets.fresh(),
        })
        env.update(settlement_env(self.cfg))
        return env

    def setup(self) -> None:
        with psycopg.connect(self.cfg.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"'.encode())
        migrate.apply(self.db_url, "public", "paygate.store.migrations")
        for name in self.cfg.acquirers:  # each named bank keeps its state in its own schema
            sqlmigrate.apply(self.db_url, schema_for(name), simbank_app.MIGRATIONS)
        env = self._env()
        logs = self.cfg.workdir / self.db_name
        logs.mkdir(parents=True, exist_ok=True)
        exe = [sys.executable, "-m", "paygate"]

        def proc(name: str, args: list[str], health: str | None) -> Process:
            return Process(name, [*exe, *args], env, health_url=health, log_path=logs / f"{name}.log")

        self.procs = {
            **{f"bank_{n}": proc(f"bank_{n}", ["bank", "--name", n, "--port", u.rsplit(":", 1)[1]], f"{u}/healthz")
               for n, u in self.bank_urls.items()},
            "api": proc("api", ["api", "--port", str(self.api_port), "--workers", "2"], f"{self.api_url}/healthz"),
            "worker1": proc("worker1", ["worker"], None),
            "worker2": proc("worker2", ["worker"], None),
        }
        for p in self.procs.values():
            p.start()
        out = subprocess.run(
            [sys.executable, "-m", "paygate", "merchant", "create", "--name", "Drill", "--email",
             f"drill-{secrets.token_hex(3)}@example.com", "--password", secrets.token_hex(8), "--json"],
            env=env, capture_output=True, check=True, text=True,
        )
        self.secret_key = orjson.loads(out.stdout.strip().splitlines()[-1])["secret_key"]

    def teardown(self) -> None:
        stop_all(reversed(list(self.procs.values())), grace_s=15)
        if not self.cfg.keep_database:
            with psycopg.connect(self.cfg.server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'.encode())

    # -- load ---------------------------------------------------------------------------------------
    async def call(self, http: httpx.AsyncClient, path: str, body: dict[str, Any] | None, key: str) -> httpx.Response:
        """Retry with the same key until the answer is definitive, as a careful client would."""
        deadline = time.monotonic() + 120
        delay = 0.1
        while time.monotonic() < deadline:
            try:
                r = await http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.HTTPError:
                r = None
            if r is not None:
                self.told.responses[r.status_code] += 1
                in_use = r.status_code == 409 and r.json()["error"]["code"] in ("idempotency_key_in_use",
                                                                                 "payment_in_flight")
                if r.status_code < 500 and not in_use:
                    return r
            self.told.retries += 1
            wait = float(r.headers.get("retry-after", delay)) if r is not None else delay
            await asyncio.sleep(min(wait, 2.0) * self.rng.uniform(0.5, 1.0))
            delay = min(delay * 2, 2.0)
        self.told.unanswered += 1
        raise TimeoutError(path)

    async def browse(self, browser: httpx.AsyncClient, method: str, url: str, data: dict[str, str] | None = None,
                     ) -> httpx.Response | None:
        """A customer's browser: a page that does not load (a process killed) is reloaded a few times."""
        for attempt in range(30):
            try:
                r = await browser.request(method, url, data=data)
                if r.status_code < 500:
                    return r
            except httpx.HTTPError:
                pass
            await asyncio.sleep(min(0.2 * 2 ** attempt, 2.0) * self.rng.uniform(0.5, 1.0))
        self.told.unanswered += 1
        return None

    async def challenge(self, http: httpx.AsyncClient, pid: str, obj: dict[str, Any]) -> None:
        """§15 through the bank's real page: the right code, a wrong one or a cancel; then the browser comes back
        to paygate, or (closed tab) never does and the bank's callback alone finishes it."""
        deadline = time.monotonic() + 120
        while obj["status"] == "requires_action" and obj["next_action"] is None and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # the bank's answer not recorded yet (a crash): recovery asks it
            with contextlib.suppress(httpx.HTTPError):
                got = await http.get(f"/v1/payments/{pid}")
                if got.status_code == 200:
                    obj = got.json()
        if obj["status"] != "requires_action" or obj["next_action"] is None:
            return
        url = obj["next_action"]["redirect_to_url"]["url"]
        answer = self.rng.choices(["right", "wrong", "cancel"], weights=[6, 3, 1])[0]
        self.told.challenges[answer] += 1
        form = {"cancel": "1"} if answer == "cancel" else {"otp": "123456" if answer == "right" else "111111"}
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as browser:
            page = await self.browse(browser, "GET", url)
            if page is None or page.status_code != 200 or 'data-test-id="challenge-form"' not in page.text:
                return
            sent = await self.browse(browser, "POST", url, form)
            if sent is None or sent.status_code != 303 or self.rng.random() < 0.3:
                return  # the customer closed the tab: the callback finishes it
            back = await self.browse(browser, "GET", sent.headers["location"])
            if back is not None and back.status_code == 303:
                self.told.returned += 1

    async def one_payment(self, http: httpx.AsyncClient) -> None:
        scenario = self.rng.choice(["auto", "auto_refunds", "manual_capture", "manual_void", "decline", "challenge"])
        number, exp_month, exp_year, cvc = (self.rng.choice(DECLINING) if scenario == "decline"
                                            else CHALLENGE if scenario == "challenge" else fresh_card(self.rng))
        amount = self.rng.randint(100, 2_000 if scenario == "challenge" else 50_000)
        key = f"drill-{secrets.token_hex(8)}"
        body = {"amount": amount, "currency": "USD", "capture_method": "manual" if scenario.startswith("manual")
                else "automatic",
                "payment_method": {"type": "card", "card": {"number": number, "exp_month": exp_month,
                                                            "exp_year": exp_year, "cvc": cvc}}}
        r = await self.call(http, "/v1/payments", body, key)
        obj = r.json()["error"]["payment"] if r.status_code == 402 else r.json()
        self.told.created[key].add(obj["id"])
        pid, status = obj["id"], obj["status"]
        if scenario == "challenge" and r.status_code == 201:
            await self.challenge(http, pid, obj)
        elif scenario == "manual_capture" and status == "authorized":
            await self.call(http, f"/v1/payments/{pid}/capture", {"amount": self.rng.randint(1, amount)},
                            f"cap-{key}")
        elif scenario == "manual_void" and status == "authorized":
            await self.call(http, f"/v1/payments/{pid}/void", None, f"void-{key}")
        elif scenario == "auto_refunds" and status == "captured":
            for i in range(self.rng.randint(1, 3)):
                rkey = f"ref{i}-{key}"
                rr = await self.call(http, "/v1/refunds", {"payment_id": pid, "amount": max(1, amount // 4)}, rkey)
                if rr.status_code == 201:
                    self.told.refunds[rkey].add(rr.json()["id"])

    async def client(self, todo: asyncio.Queue[int]) -> None:
        auth = {"Authorization": f"Bearer {self.secret_key}"}
        async with httpx.AsyncClient(base_url=self.api_url, headers=auth, timeout=30) as http:
            while True:
                try:
                    todo.get_nowait()
                except asyncio.QueueEmpty:
                    return
                with contextlib.suppress(TimeoutError):
                    await self.one_payment(http)

    async def killer(self) -> None:
        victims = ["api", "worker1", "worker2"]
        while not self.stop_killing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_killing.wait(), self.rng.uniform(*self.cfg.kill_every_s))
                return
            name = self.rng.choice(victims)
            p = self.procs[name]
            await self.in_thread(p.kill)
            self.kills[name] += 1
            await self.in_thread(p.start)

    async def bank_killer(self) -> None:
        """One bank (the first acquirer: the one most payments go to) SIGKILLed once the load runs, and
        restarted `bank_down_s` later; meanwhile its payments are refused and fail over to the others."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_killing.wait(), self.rng.uniform(3.0, 8.0))
            return
        p = self.procs[f"bank_{self.cfg.acquirers[0]}"]
        await self.in_thread(p.kill)
        self.kills["bank"] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_killing.wait(), self.cfg.bank_down_s)
        await self.in_thread(p.start)

    async def register_endpoint(self) -> None:
        auth = {"Authorization": f"Bearer {self.secret_key}"}
        async with httpx.AsyncClient(base_url=self.api_url, headers=auth, timeout=30) as http:
            r = await http.post("/v1/webhook_endpoints", json={
                "url": f"http://127.0.0.1:{self.receiver.port}/hooks", "enabled_events": ["*"]})
            r.raise_for_status()
            self.receiver.secret = r.json()["secret"]

    async def settle(self) -> bool:
        deadline = time.monotonic() + self.cfg.settle_timeout_s
        while time.monotonic() < deadline:
            with psycopg.connect(self.db_url) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM payments WHERE status IN ('requires_action','pending','capturing',"
                    "'voiding')),"
                    " (SELECT count(*) FROM refunds WHERE status = 'pending'),"
                    " (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),"
                    " (SELECT count(*) FROM idempotency_keys WHERE response_status IS NULL)"
                ).fetchone()
            assert row is not None
            if not any(row[:3]):
                return True
            await asyncio.sleep(1.0)
        return False

    # -- verdict ------------------------------------------------------------------------------------
    async def check(self) -> tuple[dict[str, int], list[str]]:
        problems: list[str] = []
        with psycopg.connect(self.db_url) as conn:
            pays = conn.execute(
                "SELECT id, status, amount_captured, amount_refunded, amount_fee FROM payments").fetchall()
            located: dict[str, str | None] = dict(conn.execute("SELECT id, acquirer FROM payments").fetchall())
            attempts = conn.execute(
                "SELECT count(*) FILTER (WHERE jsonb_array_length(acquirer_attempts) > 1),"
                " count(*) FILTER (WHERE acquirer_attempts @> '[{\"result\": \"unavailable\"}]')"
                " FROM payments").fetchone()
            failures = conn.execute("SELECT failure_code, count(*) FROM payments WHERE status = 'failed' "
                                    "GROUP BY failure_code ORDER BY failure_code").fetchall()
            unbalanced = conn.execute(
                "SELECT journal_id FROM ledger_entries GROUP BY journal_id, currency "
                "HAVING sum(CASE WHEN direction='debit' THEN amount ELSE -amount END) <> 0").fetchall()
            balance = conn.execute(
                "SELECT coalesce(sum(CASE WHEN direction='credit' THEN amount ELSE -amount END), 0) "
                "FROM ledger_entries WHERE account = 'merchant_balance'").fetchone()
            events = conn.execute("SELECT id, type, object_id FROM events").fetchall()
            refunds = conn.execute("SELECT id, payment_id, status FROM refunds").fetchall()
            in_flight = conn.execute(
                "SELECT count(*) FROM payments WHERE status IN ('requires_action','pending','capturing','voiding')"
            ).fetchone()
        expected_balance = sum(p[2] - p[3] - p[4] for p in pays)
        if balance is None or balance[0] != expected_balance:
            problems.append(f"balance {balance} != captured - refunded - fees {expected_balance}")
        if unbalanced:
            problems.append(f"{len(unbalanced)} unbalanced journals")
        if in_flight and in_flight[0]:
            problems.append(f"{in_flight[0]} payments still in flight")
        ev_by_obj: dict[str, Counter[str]] = defaultdict(Counter)
        for _, typ, obj in events:
            ev_by_obj[obj][typ] += 1
        succeeded_refunds: dict[str, int] = Counter()
        for rid, pid, st in refunds:
            want = {"succeeded": "refund.succeeded", "failed": "refund.failed"}.get(st)
            if want and ev_by_obj[rid][want] != 1:
                problems.append(f"refund {rid} {st}: {ev_by_obj[rid][want]} {want} events")
            if st == "succeeded":
                succeeded_refunds[pid] += 1
        final_event = {"captured": "payment.captured", "partially_refunded": "payment.captured",
                       "refunded": "payment.captured", "failed": "payment.failed", "voided": "payment.voided",
                       "expired": "payment.expired", "authorized": "payment.authorized"}
        double_auth = double_capture = mismatched = held = misplaced = challenged = unauthenticated = 0
        auths_at: Counter[str] = Counter()
        sem = asyncio.Semaphore(16)

        async def ops(bank: httpx.AsyncClient, name: str, pid: str) -> list[dict[str, Any]]:
            async with sem:
                r = await bank.get("/v1/operations", params={"reference": pid})
                r.raise_for_status()
                return [{**o, "bank": name} for o in r.json()["data"]]

        per_bank: list[list[list[dict[str, Any]]]] = []
        for name, url in self.bank_urls.items():  # every bank's own records, not only the payment's acquirer's
            async with httpx.AsyncClient(base_url=url, timeout=30) as bank:
                per_bank.append(await asyncio.gather(*[ops(bank, name, p[0]) for p in pays]))
        all_ops = [[o for bank in banks for o in bank] for banks in zip(*per_bank, strict=True)] if per_bank else []
        for (pid, status, captured, refunded, _fee), bank_ops in zip(pays, all_ops, strict=True):
            ok = [o for o in bank_ops if o["status"] == "succeeded"]
            auths = sum(1 for o in ok if o["type"] == "authorization")
            for o in ok:
                if o["type"] == "authorization":
                    auths_at[o["bank"]] += 1
                    if o["bank"] != located.get(pid):
                        misplaced += 1
                        problems.append(f"{pid}: authorized at {o['bank']}, paygate says {located.get(pid)}")
            caps = [o["amount"] for o in ok if o["type"] == "capture"]
            voids = sum(1 for o in ok if o["type"] == "void")
            if auths > 1:
                double_auth += 1
                banks = sorted(o["bank"] for o in ok if o["type"] == "authorization")
                problems.append(f"{pid}: authorized {auths} times ({', '.join(banks)})")
            if len(caps) > 1:
                double_capture += 1
                problems.append(f"{pid}: captured {len(caps)} times at the bank")
            bank_refunded = sum(o["amount"] for o in ok if o["type"] == "refund")
            if sum(caps) != captured or bank_refunded != refunded:
                mismatched += 1
                problems.append(f"{pid} ({status}): gateway captured/refunded {captured}/{refunded}, "
                                f"bank {sum(caps)}/{bank_refunded}")
            if status in ("failed", "voided", "expired") and auths > voids:
                held += 1
                problems.append(f"{pid} is {status} but its hold is still at the bank")
            want = final_event.get(status)
            if want and ev_by_obj[pid][want] != 1:
                problems.append(f"{pid} ({status}): {ev_by_obj[pid][want]} {want} events")
            if ev_by_obj[pid]["payment.requires_action"] > 1:
                problems.append(f"{pid}: {ev_by_obj[pid]['payment.requires_action']} payment.requires_action events")
            authentications = [o for o in bank_ops if o["type"] == "authentication"]
            if authentications:
                challenged += 1
                passed = any(o["status"] == "succeeded" for o in authentications)
                if auths and not passed:  # the challenge card authorized without its holder passing
                    unauthenticated += 1
                    problems.append(f"{pid}: authorized at the bank without a passed challenge")
        # events delivered, and each webhook-id carried one event only
        carried_twice = [wid for wid, objs in self.receiver.seen.items() if len(objs) > 1]
        undelivered = [eid for eid, _, _ in events if eid not in self.receiver.seen]
        if carried_twice:
            problems.append(f"{len(carried_twice)} webhook-ids carried different events")
        if undelivered:
            problems.append(f"{len(undelivered)} events never delivered")
        # idempotency keys: one object per key, and one key per object
        two_objects = [k for k, ids in {**self.told.created, **self.told.refunds}.items() if len(ids) > 1]
        if two_objects:
            problems.append(f"{len(two_objects)} idempotency keys produced two objects")
        if len(pays) != len(self.told.created):
            problems.append(f"{len(pays)} payments in the database for {len(self.told.created)} create keys")
        if self.receiver.bad_signatures:
            problems.append(f"{self.receiver.bad_signatures} deliveries failed signature verification")
        statuses = Counter(p[1] for p in pays)
        counts = {
            "payments": len(pays), **{f"status.{k}": v for k, v in sorted(statuses.items())},
            **{f"failed.{code}": n for code, n in failures},
            "refunds": len(refunds), "refunds.succeeded": sum(succeeded_refunds.values()),
            "events": len(events), "webhook_deliveries_received": self.receiver.deliveries,
            **{f"authorizations.{n}": auths_at[n] for n in self.bank_urls},
            "failed_over": attempts[0] if attempts else 0, "attempts_unavailable": attempts[1] if attempts else 0,
            "kills.api": self.kills["api"], "kills.bank": self.kills["bank"],
            "kills.worker": self.kills["worker1"] + self.kills["worker2"],
            "client_retries": self.told.retries, "unanswered_requests": self.told.unanswered,
            "challenged": challenged, **{f"challenges.{k}": v for k, v in sorted(self.told.challenges.items())},
            "challenges.browser_returned": self.told.returned,
            "violations.double_authorization": double_auth,
            "violations.wrong_acquirer": misplaced, "violations.double_capture": double_capture,
            "violations.amount_mismatch": mismatched, "violations.hold_left": held,
            "violations.unbalanced_journals": len(unbalanced), "violations.undelivered_events": len(undelivered),
            "violations.key_two_objects": len(two_objects), "violations.unauthenticated": unauthenticated,
        }
        return counts, problems

    async def in_thread(self, fn: Callable[[], None]) -> None:
        """`fn` in a thread; if we are cancelled meanwhile, it still runs to its end (see `busy`)."""
        fut = asyncio.ensure_future(asyncio.to_thread(fn))
        self.busy.add(fut)
        fut.add_done_callback(self.busy.discard)
        await asyncio.shield(fut)

    async def run(self) -> int:
        started = time.monotonic()
        await self.receiver.start()
        killer: asyncio.Task[None] | None = None
        bank_killer: asyncio.Task[None] | None = None
        try:
            await self.in_thread(self.setup)
            await self.register_endpoint()
            todo: asyncio.Queue[int] = asyncio.Queue()
            for i in range(self.cfg.payments):
                todo.put_nowait(i)
            killer = asyncio.create_task(self.killer())
            bank_killer = asyncio.create_task(self.bank_killer())
            await asyncio.gather(*[self.client(todo) for _ in range(self.cfg.clients)])
            self.stop_killing.set()
            await killer
            await bank_killer
            for p in self.procs.values():
                if not p.running:
                    await self.in_thread(p.restart)
            load_s = time.monotonic() - started
            settled = await self.settle()
            counts, problems = await self.check()
            reconciled, mismatches = await reconcile_with_bank(self)  # §18
            counts.update(reconciled)
            problems += mismatches
            if not settled:
                problems.insert(0, "did not settle in time")
            counts["load_seconds"] = round(load_s)
            counts["total_seconds"] = round(time.monotonic() - started)
            width = max(len(k) for k in counts)
            print(f"paygate drill — database {self.db_name}")
            for k, v in counts.items():
                print(f"  {k:<{width}}  {v}")
            for problem in problems[:50]:
                print(f"VIOLATION: {problem}")
            print("RESULT: " + ("PASS" if not problems else f"FAIL ({len(problems)} violations)"))
            return 0 if not problems else 1
        finally:
            self.stop_killing.set()
            for task in (killer, bank_killer):
                if task is not None and not task.done():
                    task.cancel()
            if self.busy:
                await asyncio.wait(list(self.busy))
            await self.receiver.stop()
            await asyncio.to_thread(self.teardown)


# --- settlement and reconciliation (API.md §18) ------------------------------------------------------

FEE_BPS = 30
GRACE_S = 15  # with discrepancies: a dropped line is missing this long after its capture


def settlement_env(cfg: DrillConfig) -> dict[str, str]:
    """The bank charges a fee; batches close every 5 s during a normal run (so they meet the kills too), only
    at the end with discrepancies (the dropped and adjusted lines must still be unsettled then)."""
    return {"PAYGATE_BANK_FEE_BPS": str(FEE_BPS), "PAYGATE_SETTLEMENT_POLL_S": "2",
            "PAYGATE_SETTLEMENT_MATCH_WAIT_S": "30",
            "PAYGATE_BANK_SETTLEMENT_INTERVAL_S": "0" if cfg.discrepancies else "5",
            **({"PAYGATE_SETTLEMENT_GRACE_S": str(GRACE_S)} if cfg.discrepancies else {})}


async def _fresh_capture(drill: Drill, http: httpx.AsyncClient) -> tuple[str, str]:
    """A new captured payment: (its id, the acquirer that captured it — a discrepancy goes to that bank)."""
    number, month, year, cvc = fresh_card(drill.rng)
    body = {"amount": drill.rng.randint(1_000, 9_000), "currency": "USD",
            "payment_method": {"type": "card", "card": {"number": number, "exp_month": month, "exp_year": year,
                                                        "cvc": cvc}}}
    for _ in range(10):  # the bank still fails some: a declined processing_error is retried with a new key
        r = await drill.call(http, "/v1/payments", body, f"drill-stl-{secrets.token_hex(8)}")
        if r.status_code == 201 and r.json()["status"] == "captured":
            return str(r.json()["id"]), str(r.json()["acquirer"])
    raise RuntimeError("no capture for the reconciliation drill")


def _db_rows(drill: Drill, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(drill.db_url) as conn:
        return conn.execute(sql.encode(), params).fetchall()


async def reconcile_with_bank(drill: Drill) -> tuple[dict[str, int], list[str]]:
    """Close a final batch (with the injected discrepancies, if asked), wait until paygate has reconciled
    every batch, then run `paygate reconcile --json`: a normal run must have no open exception, and the
    bank's net for our payments must equal paygate's `settled`; with discrepancies, exactly the injected
    three must be open."""
    problems: list[str] = []
    injected: set[tuple[str, str]] = set()
    body: dict[str, Any] = {}
    auth = {"Authorization": f"Bearer {drill.secret_key}"}
    banks = {name: httpx.AsyncClient(base_url=url, timeout=30) for name, url in drill.bank_urls.items()}
    knobs: dict[str, dict[str, Any]] = {name: {} for name in banks}  # per bank: drop/adjust/extra, if asked
    async with httpx.AsyncClient(base_url=drill.api_url, headers=auth, timeout=30) as http:
        if drill.cfg.discrepancies:
            dropped, at_drop = await _fresh_capture(drill, http)
            adjusted, at_adjust = await _fresh_capture(drill, http)
            unknown = f"pay_drill_unknown_{secrets.token_hex(6)}"
            body = {"drop": [dropped], "adjust": {adjusted: -100},
                    "extra": [{"reference": unknown, "type": "capture", "amount": 1234}]}
            # each knob goes to the bank that captured its payment (failover may have chosen another)
            knobs[at_drop]["drop"] = [dropped]
            knobs[at_adjust]["adjust"] = {adjusted: -100}
            knobs[next(iter(banks))]["extra"] = body["extra"]
            injected = {("missing_from_settlement", dropped), ("amount_mismatch", adjusted),
                        ("unknown_reference", unknown)}
        batches: list[tuple[httpx.AsyncClient, str]] = []  # every bank's batches, not only the first's
        for name, bank in banks.items():
            r = await bank.post("/v1/settlements", json=knobs[name])
            r.raise_for_status()
            batches += [(bank, b["id"]) for b in (await bank.get("/v1/settlements")).json()["data"]]
        bank_ids = [bid for _, bid in batches]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = _db_rows(drill, "SELECT count(*) FROM settlements WHERE status = 'processed' AND "
                                   "bank_settlement_id = ANY(%s)", bank_ids)[0][0]
            if done == len(bank_ids):
                break
            await asyncio.sleep(0.5)
        else:
            problems.append(f"paygate processed only {done} of the bank's {len(bank_ids)} batches")
        if injected:  # the dropped line becomes missing once the grace period has passed
            deadline = time.monotonic() + GRACE_S + 30
            while time.monotonic() < deadline:
                if _db_rows(drill, "SELECT 1 FROM reconciliation_exceptions WHERE type = 'missing_from_settlement' "
                                   "AND status = 'open' AND reference = %s", body["drop"][0]):
                    break
                await asyncio.sleep(0.5)
        bank_net = 0
        for bank, bid in batches:
            lines = (await bank.get(f"/v1/settlements/{bid}")).json()["lines"]
            bank_net += sum(x["net"] for x in lines if (("amount_mismatch", x["reference"]) not in injected
                                                        and ("unknown_reference", x["reference"]) not in injected))
        settled = sum(x["amount"] for x in (await http.get("/v1/balance")).json().get("settled", []))
    for bank in banks.values():
        await bank.aclose()
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "paygate", "reconcile", "--json"],
                                  env=drill._env(), capture_output=True, text=True, check=False)
    try:
        found = {(e["type"], e["reference"]) for e in orjson.loads(out.stdout)["exceptions"]}
    except (orjson.JSONDecodeError, KeyError):
        found = set()
        problems.append(f"paygate reconcile --json printed no report: {out.stdout[-300:]} {out.stderr[-300:]}")
    if found != injected:
        problems.append(f"reconciliation found {sorted(found)}, injected {sorted(injected)}")
    if out.returncode != (1 if injected else 0):
        problems.append(f"paygate reconcile exited {out.returncode}")
    if settled != bank_net:
        problems.append(f"paygate settled {settled}, the bank's batches net {bank_net}")
    closed = _db_rows(drill, "SELECT count(*) FROM reconciliation_exceptions WHERE status = 'closed'")[0][0]
    lines = _db_rows(drill, "SELECT count(*), count(*) FILTER (WHERE matched) FROM settlement_lines")[0]
    return {"settlement.batches": len(bank_ids), "settlement.lines": lines[0], "settlement.lines_matched": lines[1],
            "settlement.settled_net": settled, "settlement.bank_net": bank_net,
            "reconciliation.exceptions_open": len(found), "reconciliation.exceptions_injected": len(injected),
            "reconciliation.closed_by_a_later_line": closed}, problems


async def _main(cfg: DrillConfig) -> int:
    """The drill, stopped by SIGTERM as by Ctrl-C: the task is cancelled, so `Drill.run` cleans up."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await Drill(cfg).run()
    except asyncio.CancelledError:
        print("paygate drill stopped before the end: no verdict", file=sys.stderr)
        return 1


def run(cfg: DrillConfig) -> int:
    try:
        return asyncio.run(_main(cfg))
    except KeyboardInterrupt:
        print("paygate drill stopped before the end: no verdict", file=sys.stderr)
        return 130
