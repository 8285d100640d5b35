"""The failover drill (`paygate drill --failover`; tests/chaos/test_failover.py runs it short): the
database's primary dies mid-load and a synchronous standby takes over, while bank, API and worker keep
running — none of them is restarted.

It starts three PostgreSQL servers of its own (tests/chaos/pgcluster.py): a primary with a synchronous
streaming standby for the gateway, and a third for the bank simulator's state. The bank stands for an
acquirer, which does not fail over with us; and a bank that lost its records would make "nothing charged
twice" unverifiable. The gateway's processes get the multi-host URL (`…?target_session_attrs=read-write`).
Concurrent clients drive payments (retrying with their Idempotency-Keys on 5xx and 409 in-use, as a
careful client does); once `kill_after` of them are under way, the primary is SIGKILLed with all its
processes, and after `promote_after_s` (a failover manager's detection time) the standby is promoted.
A prober then creates one fresh payment every 0.2 s until one is created: kill → that answer is the
time the stack took to serve again.

Then, once everything settled: every payment and refund answered 2xx (or 402) before the kill exists,
in a status its last answer allows, with its money in the ledger; the chaos drill's checks (no double
authorization or capture at the bank, journals balanced, every event delivered to the receiver exactly
as signed, one object per key); and every paygate process still the one started at the beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg

from paygate.domain.payments import Status, reachable_from
from paygate.store import migrate
from paygate.store.events import NOTIFY_CHANNEL
from paygate.store.merchants import KEYS_CHANNEL
from paygate.supervise import Process, stop_all
from tests.chaos.drill import Drill, DrillConfig, fresh_card
from tests.chaos.pgcluster import Cluster, Server, multi_host_url

# What a payment may have become since a client was told `status`: the transition table's closure (API.md §5).
LATER = {str(s): {str(n) for n in reachable_from(s)} for s in Status}


@dataclass
class FailoverConfig:
    payments: int = 300
    clients: int = 8
    kill_after: float = 0.4  # share of the payments started before the primary is killed
    promote_after_s: float = 1.0  # how long the failover manager takes to decide
    served_within_s: float = 30.0  # N: the stack must serve again within N seconds of the kill
    settle_timeout_s: float = 180.0
    seed: int | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))


@dataclass
class Answer:
    at: float
    status: str
    captured: int = 0
    refunded: int = 0
    amount: int = 0
    payment_id: str = ""


class FailoverDrill(Drill):
    def __init__(self, cfg: FailoverConfig) -> None:
        super().__init__(DrillConfig(payments=cfg.payments, clients=cfg.clients, failure_rate=0.0, lost_rate=0.0,
                                     latency_ms="0-150", bank_timeout_s=2.0, settle_timeout_s=cfg.settle_timeout_s,
                                     seed=cfg.seed, workdir=cfg.workdir,
                                     acquirers=("bank",)))  # one bank: this drill fails the database over
        self.fcfg = cfg
        self.cluster: Cluster | None = None
        self.primary: Server | None = None
        self.standby: Server | None = None
        self.payments: dict[str, Answer] = {}  # payment id -> the last answer about it
        self.first_answer: dict[str, float] = {}  # payment id -> when it was first answered
        self.refund_answers: dict[str, Answer] = {}
        self.started = 0
        self.killed_at: float | None = None
        self.promote_issued_at: float | None = None
        self.writable_at: float | None = None
        self.promoted_at: float | None = None
        self.served_at: float | None = None
        self.first_pids: dict[str, int | None] = {}
        self.kill_now = asyncio.Event()
        self.killed = asyncio.Event()

    # -- set-up -------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.cluster = Cluster(self.cfg.workdir)
        self.primary = self.cluster.primary()
        self.standby = self.cluster.standby_of(self.primary)
        bank_server = self.cluster.initdb("bank")
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            conn.execute(b'CREATE DATABASE "paygate"')
        with psycopg.connect(bank_server.url(), autocommit=True) as conn:
            conn.execute(b'CREATE DATABASE "bank"')
        self.db_url = multi_host_url([self.primary, self.standby], "paygate")
        self.bank_db_url = bank_server.url("bank")
        migrate.apply(self.db_url, "public", "paygate.store.migrations")
        migrate.apply(self.bank_db_url, "bank", "paygate.simbank.migrations")
        env = self._env()
        env.update({"PAYGATE_BANK_DATABASE_URL": self.bank_db_url, "PAYGATE_WORKER_METRICS_PORT": "0",
                    "PAYGATE_DB_POOL_MAX": "8"})
        logs = self.cluster.root / "logs"
        logs.mkdir()
        exe = [sys.executable, "-m", "paygate"]

        def proc(name: str, args: list[str], health: str | None) -> Process:
            return Process(name, [*exe, *args], env, health_url=health, log_path=logs / f"{name}.log")

        self.procs = {
            "bank": proc("bank", ["bank", "--name", "bank", "--port", str(urlsplit(self.bank_url).port)],
                         f"{self.bank_url}/healthz"),
            "api": proc("api", ["api", "--port", str(self.api_port), "--workers", "2"], f"{self.api_url}/healthz"),
            "worker": proc("worker", ["worker"], None),
        }
        for p in self.procs.values():
            p.start()
        self.first_pids = {name: p.pid for name, p in self.procs.items()}
        out = subprocess.run(
            [*exe, "merchant", "create", "--name", "Failover", "--email",
             f"failover-{secrets.token_hex(3)}@example.com", "--password", secrets.token_hex(8), "--json"],
            env=env, capture_output=True, check=True, text=True,
        )
        self.secret_key = orjson.loads(out.stdout.strip().splitlines()[-1])["secret_key"]

    def teardown(self) -> None:
        stop_all(reversed(list(self.procs.values())), grace_s=15)
        if self.cluster is not None:
            self.cluster.stop()

    # -- load ---------------------------------------------------------------------------------------
    async def call(self, http: httpx.AsyncClient, path: str, body: dict[str, Any] | None, key: str) -> httpx.Response:
        r = await super().call(http, path, body, key)
        self._remember(r)
        return r

    def _remember(self, r: httpx.Response) -> None:
        now = time.monotonic()
        if r.status_code not in (200, 201, 402):
            return
        obj = r.json()["error"].get("payment") if r.status_code == 402 else r.json()
        if not isinstance(obj, dict):
            return
        if obj.get("object") == "payment":
            self.payments[obj["id"]] = Answer(now, obj["status"], obj["amount_captured"], obj["amount_refunded"])
            self.first_answer.setdefault(obj["id"], now)
        elif obj.get("object") == "refund":
            self.refund_answers[obj["id"]] = Answer(now, obj["status"], amount=obj["amount"],
                                                    payment_id=obj["payment_id"])
        # served again: something created by a request *sent* after the kill (not one the old primary had
        # committed just before it died)
        sent_at = now - r.elapsed.total_seconds()
        if self.killed_at is not None and self.served_at is None and r.request.method == "POST" \
                and r.status_code == 201 and sent_at > self.killed_at:
            self.served_at = now

    async def client(self, todo: asyncio.Queue[int]) -> None:
        auth = {"Authorization": f"Bearer {self.secret_key}"}
        async with httpx.AsyncClient(base_url=self.api_url, headers=auth, timeout=30) as http:
            while True:
                try:
                    todo.get_nowait()
                except asyncio.QueueEmpty:
                    return
                self.started += 1
                if self.started >= self.fcfg.kill_after * self.cfg.payments:
                    self.kill_now.set()
                with contextlib.suppress(TimeoutError):
                    await self.one_payment(http)

    async def failover(self) -> None:
        """Kill the primary once `kill_after` of the payments are under way; promote the standby."""
        assert self.cluster is not None and self.primary is not None and self.standby is not None
        await self.kill_now.wait()
        self.killed_at = await asyncio.to_thread(self.cluster.kill, self.primary)
        self.killed.set()
        print(f"  primary SIGKILLed after {self.started} payments started", flush=True)
        await asyncio.sleep(self.fcfg.promote_after_s)
        self.promote_issued_at = time.monotonic()
        watch = asyncio.ensure_future(asyncio.to_thread(self._wait_writable, self.standby))
        await asyncio.to_thread(self.cluster.promote, self.standby)  # returns once promoted, polling for it
        await watch
        self.promoted_at = time.monotonic()
        print(f"  standby promoted {self.promoted_at - self.killed_at:.2f}s after the kill", flush=True)

    def _wait_writable(self, server: Server) -> None:
        """When `server` first accepts writes (polled every 10 ms): the failover manager's work is done."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error), psycopg.connect(server.url(), connect_timeout=1) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    self.writable_at = time.monotonic()
                    return
            time.sleep(0.01)

    async def prober(self) -> None:
        """From the kill on, a fresh payment every 0.2 s (each retried on its own key like any client's)
        until one is created: when that happens, the stack serves again."""
        await self.killed.wait()
        auth = {"Authorization": f"Bearer {self.secret_key}"}
        probes: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(base_url=self.api_url, headers=auth, timeout=30) as http:

            async def probe() -> None:
                number, exp_month, exp_year, cvc = fresh_card(self.rng)
                key = f"probe-{secrets.token_hex(8)}"
                body = {"amount": 100, "currency": "USD", "payment_method": {"type": "card", "card": {
                    "number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}}}
                with contextlib.suppress(TimeoutError):
                    r = await self.call(http, "/v1/payments", body, key)
                    self.told.created[key].add((r.json()["error"]["payment"] if r.status_code == 402
                                                else r.json())["id"])

            deadline = time.monotonic() + self.fcfg.served_within_s * 3
            while self.served_at is None and time.monotonic() < deadline:
                probes.append(asyncio.create_task(probe()))
                await asyncio.sleep(0.2)
            await asyncio.gather(*probes)

    # -- verdict ------------------------------------------------------------------------------------
    def check_answered(self) -> tuple[dict[str, int], list[str]]:
        """Every payment and refund answered before the kill is there, as answered or later."""
        assert self.killed_at is not None
        problems: list[str] = []
        before = self.payments
        # answered before the kill at least once (its last answer, checked below, may be a later one)
        answered_before = [pid for pid, at in self.first_answer.items() if at < self.killed_at]
        with psycopg.connect(self.db_url) as conn:
            rows = {r[0]: r for r in conn.execute(
                "SELECT p.id, p.status, p.amount_captured, p.amount_refunded, p.amount_fee, "
                " (SELECT coalesce(sum(CASE WHEN direction = 'credit' THEN amount ELSE -amount END), 0) "
                "  FROM ledger_entries e WHERE e.payment_id = p.id AND e.account = 'merchant_balance') "
                "FROM payments p WHERE p.id = ANY(%s)", (list(before),)).fetchall()}
            refunds = {r[0]: r for r in conn.execute(
                "SELECT id, status, amount FROM refunds WHERE id = ANY(%s)", (list(self.refund_answers),)).fetchall()}
        missing = status_wrong = ledger_wrong = 0
        for pid in answered_before:
            a = before[pid]
            row = rows.get(pid)
            if row is None:
                missing += 1
                problems.append(f"{pid}: answered {a.status} before the kill, gone after the failover")
                continue
            _, status, captured, refunded, fee, balance = row
            if status not in LATER.get(a.status, {a.status}) or captured < a.captured or refunded < a.refunded:
                status_wrong += 1
                problems.append(f"{pid}: last answered {a.status} {a.captured}/{a.refunded}, now {status} "
                                f"{captured}/{refunded}")
            if balance != captured - refunded - fee:
                ledger_wrong += 1
                problems.append(f"{pid}: merchant balance {balance} in the ledger, {captured - refunded - fee} due")
        refunds_before = [rid for rid, a in self.refund_answers.items() if a.at < self.killed_at]
        refunds_missing = 0
        for rid in refunds_before:
            a = self.refund_answers[rid]
            got = refunds.get(rid)
            if got is None or got[2] != a.amount or (a.status == "succeeded" and got[1] != "succeeded"):
                refunds_missing += 1
                problems.append(f"refund {rid}: answered {a.status} {a.amount} before the kill, now {got}")
        counts = {"answered_before_kill.payments": len(answered_before),
                  "answered_before_kill.refunds": len(refunds_before),
                  "violations.lost_after_failover": missing + refunds_missing,
                  "violations.status_regressed": status_wrong, "violations.ledger_mismatch": ledger_wrong}
        return counts, problems

    def check_listening(self) -> tuple[dict[str, int], list[str]]:
        """The LISTEN connections are back, on the new primary: the worker's and each API process's."""
        want = {NOTIFY_CHANNEL: 1, KEYS_CHANNEL: 2}  # one worker; `paygate api --workers 2`
        deadline = time.monotonic() + 15  # they reconnect with a backoff of at most 10 s
        while True:
            with psycopg.connect(self.db_url, autocommit=True) as conn:
                rows = conn.execute("SELECT query, count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND query LIKE 'LISTEN %' GROUP BY query").fetchall()
            got = {str(q).removeprefix("LISTEN "): int(n) for q, n in rows}
            if all(got.get(ch, 0) >= n for ch, n in want.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        problems = [f"{got.get(ch, 0)} LISTEN {ch} sessions on the new primary, {n} wanted"
                    for ch, n in want.items() if got.get(ch, 0) < n]
        return {f"listening_after_failover.{ch}": got.get(ch, 0) for ch in want}, problems

    async def run(self) -> int:
        started = time.monotonic()
        await self.receiver.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.in_thread(self.setup)
            await self.register_endpoint()
            print(f"paygate failover drill — {self.db_url}", flush=True)
            todo: asyncio.Queue[int] = asyncio.Queue()
            for i in range(self.cfg.payments):
                todo.put_nowait(i)
            tasks = [asyncio.create_task(self.failover()), asyncio.create_task(self.prober())]
            await asyncio.gather(*[self.client(todo) for _ in range(self.cfg.clients)])
            await asyncio.gather(*tasks)
            load_s = time.monotonic() - started
            settled = await self.settle()
            counts, problems = await self.check()
            more, more_problems = self.check_answered()
            counts.update(more)
            problems += more_problems
            if not settled:
                problems.insert(0, "did not settle in time")
            listens, listen_problems = await asyncio.to_thread(self.check_listening)
            counts.update(listens)
            problems += listen_problems
            restarted = [n for n, p in self.procs.items() if not p.running or p.pid != self.first_pids[n]]
            if restarted:
                problems.append(f"paygate processes not running as started: {restarted}")
            assert self.killed_at is not None and self.promoted_at is not None and self.promote_issued_at is not None
            served_s = (self.served_at - self.killed_at) if self.served_at is not None else float("inf")
            if served_s > self.fcfg.served_within_s:
                problems.append(f"not served again within {self.fcfg.served_within_s:.0f}s of the kill")
            internal = sum(n for code, n in self.told.responses.items() if code >= 500 and code != 503)
            if internal:  # a request the failover interrupted must fail closed: 503 with Retry-After
                problems.append(f"{internal} answers 5xx other than 503")
            for k in ("kills.api", "kills.worker"):
                counts.pop(k, None)
            counts.update({
                "failover.kill_to_promote_issued_ms": round((self.promote_issued_at - self.killed_at) * 1000),
                "failover.kill_to_promote_returned_ms": round((self.promoted_at - self.killed_at) * 1000),
                "failover.kill_to_served_ms": round(served_s * 1000) if served_s != float("inf") else -1,
                # from `pg_ctl promote` to paygate serving: the standby's promotion plus paygate's reconnection
                "failover.promote_issued_to_served_ms":
                    round((served_s - (self.promote_issued_at - self.killed_at)) * 1000)
                    if served_s != float("inf") else -1,
                # paygate's own part: from the new primary's first moment of accepting writes
                "failover.writable_to_served_ms":
                    round((served_s - (self.writable_at - self.killed_at)) * 1000)
                    if served_s != float("inf") and self.writable_at is not None else -1,
                **{f"responses.{code}": n for code, n in sorted(self.told.responses.items())},
                "violations.5xx_not_503": internal,
                "paygate_processes_restarted": len(restarted),
                "load_seconds": round(load_s), "total_seconds": round(time.monotonic() - started),
            })
            width = max(len(k) for k in counts)
            for k, v in counts.items():
                print(f"  {k:<{width}}  {v}")
            for problem in problems[:50]:
                print(f"VIOLATION: {problem}")
            print("RESULT: " + ("PASS" if not problems else f"FAIL ({len(problems)} violations)"), flush=True)
            return 0 if not problems else 1
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.busy:
                await asyncio.wait(list(self.busy))
            await self.receiver.stop()
            if os.environ.get("PAYGATE_FAILOVER_KEEP") and self.cluster is not None:
                print(f"kept: {self.cluster.root}")
                stop_all(reversed(list(self.procs.values())), grace_s=15)
            else:
                await asyncio.to_thread(self.teardown)


async def _main(cfg: FailoverConfig) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await FailoverDrill(cfg).run()
    except asyncio.CancelledError:
        print("paygate failover drill stopped before the end: no verdict", file=sys.stderr)
        return 1


def run(cfg: FailoverConfig) -> int:
    try:
        return asyncio.run(_main(cfg))
    except KeyboardInterrupt:
        print("paygate failover drill stopped before the end: no verdict", file=sys.stderr)
        return 130

