"""paygate's benchmark harness (issue 6): one command, everything on this machine, stops by itself.

    .venv/bin/python bench/run.py              # full run: 20 s per scenario, 32 connections
    .venv/bin/python bench/run.py --smoke      # CI: ~2 s per scenario, 4 connections, < 90 s in all

It creates its own databases on the local PostgreSQL (127.0.0.1:5432, user postgres), starts paygate as
deployed (`paygate bank`, `paygate api --workers N`, `paygate worker`) plus a webhook receiver, and drives
load with `wrk` (installed with apt-get when missing; else the asyncio generator in loadgen.py, which the
output names) in four scenarios: card payments with automatic capture, authorize → capture → partial
refund, an idempotent replay, and retrieving a payment. For each it reports requests/s, p50/p99 latency,
errors, and CPU and RSS per process; for scenario 1 also webhook delivery lag and commits per payment.
Then pgbench (TPC-B) on a fresh database of the same server, for scale: payments/s ÷ pgbench tps. A
separate pass counts SQL round trips per request on the client side (see sqlcount.py), and `--profile`
samples the API processes with py-spy during an extra scenario-1 run. Every database it made is dropped.
The table is printed and a JSON copy written to bench/results/ (gitignored). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure
import profiling
from loadgen import card_body  # the same request bodies as the load scenarios
from report import render
from stack import BENCH_DIR, Databases, Stack

from paygate.polling import wait_for

RESULTS = BENCH_DIR / "results"

T = TypeVar("T")


@dataclass(frozen=True)
class Scenario:
    """A load pattern: bench/<script>.lua for wrk, or loadgen.py --scenario <script>."""

    number: int
    name: str
    script: str  # bench/<script>.lua, and loadgen.py's --scenario
    open_loop: bool = False  # arrivals at Options.open_rate per second, not waiting for answers (loadgen.py)


SCENARIOS = [
    Scenario(1, "payment, auto capture", "payments"),
    Scenario(2, "authorize>capture>refund", "refund_flow"),
    Scenario(3, "idempotent replay", "replay"),
    Scenario(4, "retrieve payment", "retrieve"),
    Scenario(5, "payments, open loop", "payments", open_loop=True),
]
OPEN_LOOP_MAX_CONNECTIONS = 256  # what an open-loop run may open at most; beyond that arrivals queue


@dataclass
class Options:
    """The command line, with --smoke's smaller defaults applied."""

    server_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    duration: float = 20.0
    warmup: float = 3.0
    connections: int = 32
    threads: int = 2
    api_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    generator: str = "auto"  # auto | wrk | python
    install: bool = True
    pgbench: bool = True
    pgbench_scale: int = 10
    count_requests: int = 100
    pool_max: int | None = None  # PAYGATE_DB_POOL_MAX for the API and worker; None: paygate's default
    profile: bool = False
    drain_timeout: float = 60.0
    smoke: bool = False
    only: tuple[int, ...] = (1, 2, 3, 4, 5)
    open_rate: float = 100.0  # scenario 5's offered payments per second
    json_out: Path | None = None
    keep_logs: bool = False


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="CI mode: ~2 s per scenario, few connections, < 90 s")
    p.add_argument("--duration", type=float, help="seconds measured per scenario (default 20; smoke 2)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each scenario (default 3; smoke 0.5)")
    p.add_argument("--connections", type=int, help="concurrent connections (default 32; smoke 4)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--api-workers", type=int, help="API processes, `paygate api --workers N` (default: cores)")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto",
                   help="load generator: wrk (installed if missing), python (loadgen.py), auto: wrk else python")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    p.add_argument("--no-pgbench", action="store_true", help="skip the pgbench comparison")
    p.add_argument("--pgbench-scale", type=int, help="pgbench -i -s (default 10; smoke 1)")
    p.add_argument("--count-requests", type=int, help="requests per kind in the round-trip count pass "
                                                      "(default 100; smoke 10; 0 skips it)")
    p.add_argument("--pool-max", type=int, help="PAYGATE_DB_POOL_MAX (default: paygate's own; smoke 4)")
    p.add_argument("--profile", action="store_true", help="py-spy the API processes during an extra scenario-1 run")
    p.add_argument("--only", help="comma-separated scenario numbers to run (default 1,2,3,4,5; 4 needs 1)")
    p.add_argument("--open-rate", type=float, help="scenario 5: offered payments per second (default 100; smoke 20)")
    p.add_argument("--server-url", default=Options.server_url,
                   help="admin URL of the local PostgreSQL server the run creates its databases on")
    p.add_argument("--json-out", type=Path, help="where to write the JSON result (default bench/results/...)")
    p.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    a = p.parse_args(argv)
    smoke = bool(a.smoke)

    def pick(value: T | None, full: T, small: T) -> T:
        return value if value is not None else (small if smoke else full)

    return Options(
        server_url=a.server_url, duration=pick(a.duration, 20.0, 2.0), warmup=pick(a.warmup, 3.0, 0.5),
        connections=pick(a.connections, 32, 4), threads=a.threads,
        api_workers=pick(a.api_workers, os.cpu_count() or 1, 2), generator=a.generator, install=not a.no_install,
        pgbench=not a.no_pgbench, pgbench_scale=pick(a.pgbench_scale, 10, 1),
        count_requests=pick(a.count_requests, 100, 10), pool_max=pick(a.pool_max, None, 4), profile=a.profile,
        drain_timeout=20.0 if smoke else 60.0,
        smoke=smoke, json_out=a.json_out, keep_logs=a.keep_logs,
        only=tuple(int(x) for x in a.only.split(",")) if a.only else Options.only,
        open_rate=pick(a.open_rate, 100.0, 20.0),
    )


# -- the load generator ---------------------------------------------------------------------------------

def ensure_wrk(allow_install: bool) -> tuple[str | None, str]:
    """wrk's path, installing Debian's package when missing (as root); None if it cannot be had."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk (already installed)"
    if not allow_install:
        return None, "wrk not installed (--no-install)"
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return None, "wrk not installed, and no apt-get as root to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "wrk"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            return None, f"wrk install failed ({' '.join(cmd)}: {done.stderr.strip()[-200:]})"
    found = shutil.which("wrk")
    return (found, "wrk (installed now with apt-get)") if found else (None, "wrk install left no wrk binary")


def _wait_with_rusage(popen: subprocess.Popen[bytes], timeout: float) -> tuple[float, float, float]:
    """Reap the child ourselves to get its own CPU time (user + system, and system, in s) and its peak RSS
    (MB, sampled);
    kill it past `timeout`. (Popen.wait would reap it and lose the rusage.)"""
    deadline = time.monotonic() + timeout
    peak = 0.0
    try:
        proc: psutil.Process | None = psutil.Process(popen.pid)
    except psutil.Error:
        proc = None
    while True:
        pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
        if pid == popen.pid:
            popen.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime), float(usage.ru_stime), peak
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, proc.memory_info().rss / 2**20)
        if time.monotonic() > deadline:
            popen.kill()
        time.sleep(0.05)


def _exited(popen: subprocess.Popen[bytes]) -> bool:
    """Has the child exited? Without reaping it (Popen.poll would), so that its rusage can still be read."""
    info = os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


@dataclass
class LoadResult:
    data: dict[str, Any]
    cpu_s: float
    sys_s: float
    wall_s: float
    peak_rss_mb: float


class Load:
    """Runs one bounded burst of a scenario against 127.0.0.1 with wrk or loadgen.py."""

    def __init__(self, opts: Options, wrk: str | None, api_url: str, secret: str, workdir: Path) -> None:
        self.opts, self.wrk, self.api_url, self.secret, self.workdir = opts, wrk, api_url, secret, workdir
        self.runs = 0

    @property
    def name(self) -> str:
        return "wrk" if self.wrk else "python (bench/loadgen.py)"

    def run(self, script: str, duration: float, extra: list[str], rate: float | None = None) -> LoadResult:
        """`rate`: open loop at that many arrivals per second, always with loadgen.py (wrk is closed-loop)."""
        self.runs += 1
        token = f"b{secrets.token_hex(4)}r{self.runs}"  # fresh per burst: keys never repeat across bursts
        connections = max(self.opts.connections, self.opts.threads)
        if rate:
            cmd = [sys.executable, str(BENCH_DIR / "loadgen.py"), "--url", self.api_url, "--scenario", script,
                   "--duration", str(duration), "--connections", str(OPEN_LOOP_MAX_CONNECTIONS), "--token", token,
                   "--secret", self.secret, "--rate", str(rate)]
        elif self.wrk:
            cmd = [self.wrk, "-t", str(self.opts.threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
                   "--timeout", "10s", "-s", str(BENCH_DIR / f"{script}.lua"), self.api_url, "--", token,
                   self.secret, *extra]
        else:
            cmd = [sys.executable, str(BENCH_DIR / "loadgen.py"), "--url", self.api_url, "--scenario", script,
                   "--duration", str(duration), "--connections", str(connections), "--token", token,
                   "--secret", self.secret]
            if script == "replay":
                cmd += ["--key", extra[0], "--body", extra[1]]
            elif script == "retrieve":
                cmd += ["--ids", extra[0]]
        out_path = self.workdir / f"load-{self.runs}.out"
        started = time.monotonic()
        with open(out_path, "wb") as out:
            popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "BENCH_LUA_DIR": str(BENCH_DIR)})
            cpu, cpu_sys, peak = _wait_with_rusage(popen, duration + 60)
        wall = time.monotonic() - started
        text = out_path.read_text(errors="replace")
        line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if popen.returncode != 0 or line is None:
            raise RuntimeError(f"load generator failed ({popen.returncode}): {' '.join(cmd[:8])} ...\n{text[-3000:]}")
        return LoadResult(json.loads(line.removeprefix("BENCH_RESULT ")), cpu, cpu_sys, wall, peak)


# -- the run --------------------------------------------------------------------------------------------

class Bench:
    """One run: set-up, the scenarios, the optional profile, the round-trip count, pgbench, the report.
    Whatever happens, its processes are stopped and its databases dropped."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.token = secrets.token_hex(4)
        self.dbs = Databases(opts.server_url, self.token)
        self.workdir = Path(tempfile.mkdtemp(prefix="paygate-bench-"))
        self.stack: Stack | None = None
        self.load: Load | None = None
        self.secret = ""
        self.endpoint_id = ""
        self.gw_conn: measure.Conn | None = None
        self.admin_conn: measure.Conn | None = None
        self.report: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                        "python": platform.python_version(), "platform": platform.platform()},
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
            "scenarios": {}, "notes": [],
        }

    def note(self, text: str) -> None:
        self.report["notes"].append(text)
        print(f"bench: {text}", flush=True)

    # -- set-up ----------------------------------------------------------------------------------------
    def setup(self) -> None:
        wrk: str | None = None
        if self.opts.generator in ("auto", "wrk"):
            wrk, how = ensure_wrk(self.opts.install)
            if wrk is None and self.opts.generator == "wrk":
                raise SystemExit(f"--generator wrk: {how}")
            if wrk is None:
                self.note(f"FALLBACK: {how}; using the Python asyncio generator bench/loadgen.py")
            else:
                self.note(f"generator: {how}")
        else:
            self.note("generator: python (bench/loadgen.py), as asked")
        self.report["generator"] = "wrk" if wrk else "python"
        self.preflight()
        for name in self.dbs.sweep_abandoned():
            self.note(f"dropped {name}, left behind by a killed run")
        self.dbs.create(self.dbs.gateway)
        self.dbs.create(self.dbs.bank)
        self.note(f"databases {self.dbs.gateway}, {self.dbs.bank}; logs in {self.workdir}")
        self.stack = Stack(self.dbs, self.workdir, self.opts.api_workers, pool_max=self.opts.pool_max)
        self.stack.migrate()
        self.gw()  # opened now, before the stack's pools take the server's free connections
        self.stack.start()
        self.secret = self.stack.create_merchant(self.token)
        with self.api() as http:
            r = http.post("/v1/webhook_endpoints",
                          json={"url": f"{self.stack.receiver_url}/hooks", "enabled_events": ["*"]})
        r.raise_for_status()
        self.endpoint_id = r.json()["id"]
        self.load = Load(self.opts, wrk, self.stack.api_url, self.secret, self.workdir)

    def preflight(self) -> None:
        """Say so when the machine is busy or the server short of connections: both skew the numbers."""
        busy = 100.0 - psutil.cpu_times_percent(interval=1.0).idle
        self.report["machine_busy_before_pct"] = round(busy, 1)
        if busy > 15:
            self.note(f"WARNING: the machine was {busy:.0f}% busy before the run (other load): numbers will be low")
        row = self.admin().execute("SELECT current_setting('max_connections')::int - "
                                   "current_setting('superuser_reserved_connections')::int - "
                                   "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
                                   ).fetchone()
        free = int(row[0]) if row else 0
        pool = self.opts.pool_max or 16
        need = self.opts.api_workers * pool + max(8, pool) + min(20, self.opts.connections) + 4
        self.report["server_free_connections"] = free
        if free < need:
            self.note(f"WARNING: the server has {free} free connections, the stack may want {need} at peak "
                      "(other clients hold the rest); expect pool timeouts")

    def api(self) -> httpx.Client:
        assert self.stack is not None
        return httpx.Client(base_url=self.stack.api_url, headers={"Authorization": f"Bearer {self.secret}"},
                            timeout=30)

    def admin(self) -> measure.Conn:
        """The harness's connection to the server's `postgres` database, kept for the run (see measure.Conn)."""
        if self.admin_conn is None or self.admin_conn.closed:
            self.admin_conn = psycopg.connect(self.opts.server_url, autocommit=True)
        return self.admin_conn

    def gw(self) -> measure.Conn:
        """The harness's own connection to the gateway database, kept for the run."""
        if self.gw_conn is None or self.gw_conn.closed:
            self.gw_conn = psycopg.connect(self.dbs.url(self.dbs.gateway), autocommit=True)
        return self.gw_conn

    def gw_query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.gw().execute(query.encode(), params).fetchall()

    def drain(self) -> tuple[bool, float]:
        """Wait (bounded) until the worker has no webhook delivery pending; (drained, seconds waited)."""
        started = time.monotonic()
        ok = wait_for(lambda: self.gw_query(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")[0][0] == 0,
            self.opts.drain_timeout, interval=0.2)
        return bool(ok), time.monotonic() - started

    def process_groups(self) -> dict[str, list[psutil.Process]]:
        assert self.stack is not None
        groups: dict[str, list[psutil.Process]] = {}
        api = self.stack.children["api"].processes()
        workers = [p for p in api if p.pid in set(self.stack.api_worker_pids())]
        if len(api) > 1:
            groups["api supervisor"] = [p for p in api if p not in workers]  # uvicorn's, and its resource tracker
            groups[f"api workers x{len(workers)}"] = workers
        else:
            groups["api"] = api
        for name in ("bank", "worker", "receiver"):
            groups[name] = self.stack.children[name].processes()
        self._add_postgres(groups, {self.dbs.gateway, self.dbs.bank})
        return groups

    def _add_postgres(self, groups: dict[str, list[psutil.Process]], ours: set[str]) -> None:
        by_db = measure.backend_databases(self.admin())
        pg = measure.postgres_processes()
        groups["postgres (bench dbs)"] = [p for p in pg if by_db.get(p.pid) in ours]
        groups["postgres (rest)"] = [p for p in pg if by_db.get(p.pid) not in ours]

    # -- scenarios -------------------------------------------------------------------------------------
    def scenario_args(self, sc: Scenario) -> list[str]:
        if sc.script == "replay":
            body = json.dumps({"amount": 1500, "currency": "USD", "payment_method": {"type": "card", "card": {
                "number": "4012888888881881", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}},
                separators=(",", ":"))
            key = f"bench-replay-{self.token}"
            with self.api() as http:
                r = http.post("/v1/payments", content=body, headers={"Idempotency-Key": key,
                                                                     "Content-Type": "application/json"})
            if r.status_code != 201:
                raise RuntimeError(f"could not create the payment to replay: {r.status_code} {r.text}")
            return [key, body]
        if sc.script == "retrieve":
            ids = [row[0] for row in self.gw_query(
                "SELECT id FROM payments WHERE capture_method = 'automatic' ORDER BY random() LIMIT 10000")]
            if not ids:
                raise RuntimeError("no payments to retrieve (scenario 1 created none)")
            path = self.workdir / "payment-ids.txt"
            path.write_text("\n".join(ids) + "\n")
            return [str(path)]
        return []

    def run_scenario(self, sc: Scenario) -> dict[str, Any]:
        assert self.load is not None and self.stack is not None
        rate = self.opts.open_rate if sc.open_loop else None
        load = f"{rate:g} arrivals/s" if rate else f"{self.opts.connections} connections"
        print(f"bench: scenario {sc.number} ({sc.name}): {self.opts.warmup:g} s warm-up, "
              f"{self.opts.duration:g} s measured, {load} ...", flush=True)
        extra = self.scenario_args(sc)
        if self.opts.warmup > 0:
            self.load.run(sc.script, self.opts.warmup, extra, rate)
        self.drain()
        names = [self.dbs.gateway, self.dbs.bank]
        db0 = measure.db_counters(self.admin(), names)
        tables0 = measure.table_counters(self.gw())
        pays0 = self.gw_query("SELECT count(*) FROM payments")[0][0]
        window = measure.Window(self.process_groups())
        t0 = time.time()
        window.start()
        res = self.load.run(sc.script, self.opts.duration, extra, rate)
        procs = window.stop()
        t1 = time.time()
        drained, drain_s = self.drain()
        db1 = measure.db_counters(self.admin(), names)
        tables1 = measure.table_counters(self.gw())
        pays1 = self.gw_query("SELECT count(*) FROM payments")[0][0]
        data = res.data
        duration = float(data["duration_s"]) or self.opts.duration
        extra_counts = data["extra"]
        socket_errors = sum(int(v) for v in data["socket_errors"].values())
        out: dict[str, Any] = {
            "name": sc.name, "generator": data["generator"], "duration_s": round(duration, 2),
            "connections": OPEN_LOOP_MAX_CONNECTIONS if rate else self.opts.connections,
            "offered_per_s": rate, "requests": int(data["requests"]),
            "requests_per_s": round(int(data["requests"]) / duration, 1),
            "latency_ms": {k: round(float(v) / 1000, 2) for k, v in data["latency_us"].items()},
            "statuses": data["statuses"], "socket_errors": data["socket_errors"],
            "errors": int(extra_counts.get("unexpected", 0)) + socket_errors,
            "replayed": int(extra_counts.get("replayed", 0)),
            "transactions": int(extra_counts.get("transactions", 0)),
            "machine_busy_pct": round(window.machine_busy_pct, 1),
            "processes": {k: {"cpu_pct": round(v.cpu_pct, 1), "sys_pct": round(v.sys_pct, 1),
                              "rss_mb": round(v.rss_mb, 1), "count": v.count} for k, v in procs.items()},
            "webhooks_drained": drained, "drain_s": round(drain_s, 2),
        }
        out["processes"][f"generator ({self.load.name})"] = {
            "cpu_pct": round(100 * res.cpu_s / res.wall_s, 1), "sys_pct": round(100 * res.sys_s / res.wall_s, 1),
            "rss_mb": round(res.peak_rss_mb, 1), "count": 1}
        # CPU time per request, per process: what a request costs, whoever else shared the machine
        rate = out["requests_per_s"]
        for stats in out["processes"].values():
            stats["cpu_ms_per_request"] = round(10.0 * stats["cpu_pct"] / rate, 2) if rate else None
        if sc.script == "refund_flow":
            out["transactions_per_s"] = round(out["transactions"] / duration, 1)
        created = int(pays1) - int(pays0)
        out["payments_created"] = created
        if sc.script in ("payments", "refund_flow"):
            out["payments_per_s"] = round(created / duration, 1)
            out["webhook_lag_ms"] = self.webhook_lag(t0, t1)
            gw = measure.delta(db1, db0).get(self.dbs.gateway, {})
            bank = measure.delta(db1, db0).get(self.dbs.bank, {})
            if created:
                out["per_payment"] = {
                    "gateway_commits": round(gw.get("xact_commit", 0) / created, 2),
                    "bank_commits": round(bank.get("xact_commit", 0) / created, 2),
                    "gateway_rollbacks": round(gw.get("xact_rollback", 0) / created, 3),
                    "gateway_rows": {t: {c: round(v / created, 2) for c, v in cols.items() if v}
                                     for t, cols in measure.delta(tables1, tables0).items()
                                     if any(cols.values())},
                }
        return out

    def webhook_lag(self, t0: float, t1: float) -> dict[str, Any]:
        """Arrival at the receiver minus the event's created_at, for the events of [t0, t1)."""
        assert self.stack is not None
        arrivals: dict[str, float] = httpx.get(f"{self.stack.receiver_url}/arrivals", timeout=30).json()["arrivals"]
        rows = self.gw_query("SELECT id, extract(epoch FROM created_at)::float8 FROM events "
                             "WHERE created_at >= to_timestamp(%s) AND created_at < to_timestamp(%s)", (t0, t1))
        lags = [(arrivals[eid] - float(created)) * 1000 for eid, created in rows if eid in arrivals]
        return {"events": len(rows), "delivered": len(lags), "p50": round(measure.percentile(lags, 50), 1),
                "p99": round(measure.percentile(lags, 99), 1), "max": round(max(lags), 1) if lags else 0.0}

    # -- profile ---------------------------------------------------------------------------------------
    def profile(self) -> None:
        assert self.load is not None and self.stack is not None
        py_spy = profiling.find_py_spy()
        if py_spy is None:
            self.note("--profile: py-spy not found (pip install py-spy into the venv); skipped")
            return
        pids = self.stack.api_worker_pids()
        print(f"bench: profiling scenario 1 for {self.opts.duration:g} s (py-spy on API pids {pids}) ...", flush=True)
        samplers = profiling.record(py_spy, pids, self.opts.duration, self.workdir)
        res = self.load.run("payments", self.opts.duration, [])
        for s in samplers:
            s.wait(timeout=60)
        files = [self.workdir / f"profile-api-{pid}.txt" for pid in pids]
        summary = profiling.summarise(files)
        summary["requests_per_s_while_profiled"] = round(res.data["requests"] / float(res.data["duration_s"]), 1)
        RESULTS.mkdir(exist_ok=True)
        for f in files:
            if f.exists():
                shutil.copy(f, RESULTS / f"{self.token}-{f.name}")
        summary["raw_files"] = [str(RESULTS / f"{self.token}-{f.name}") for f in files if f.exists()]
        self.report["profile"] = summary

    # -- round trips -----------------------------------------------------------------------------------
    def count_round_trips(self) -> None:
        """Restart the stack under sqlcount.py (one API process) and count per request kind, sequentially."""
        assert self.stack is not None
        n = self.opts.count_requests
        print(f"bench: counting SQL round trips ({n} sequential requests per kind) ...", flush=True)
        self.stack.stop()
        self.stack = Stack(self.dbs, self.workdir, 1, counted=True, pool_max=self.opts.pool_max)
        self.stack.start()
        with self.api() as http:
            r = http.patch(f"/v1/webhook_endpoints/{self.endpoint_id}", json={"url": f"{self.stack.receiver_url}/h"})
            r.raise_for_status()
            rng_key = f"count-{self.token}"
            rng = random.Random(self.token)
            pids: list[str] = []
            replay_body = card_body(rng, 700, "automatic")
            http.post("/v1/payments", content=replay_body,
                      headers={"Idempotency-Key": f"{rng_key}-replay", "Content-Type": "application/json"})

            def post(path: str, body: bytes, key: str, want: int) -> dict[str, Any]:
                resp = http.post(path, content=body, headers={"Idempotency-Key": key,
                                                              "Content-Type": "application/json"})
                if resp.status_code != want:
                    raise RuntimeError(f"count pass: {path} answered {resp.status_code}: {resp.text[:300]}")
                return dict(resp.json())

            def create_auto(i: int) -> None:
                post("/v1/payments", card_body(rng, 500, "automatic"), f"{rng_key}-a{i}", 201)

            def authorize(i: int) -> None:
                pids.append(post("/v1/payments", card_body(rng, 1000, "manual"), f"{rng_key}-m{i}", 201)["id"])

            def capture(i: int) -> None:
                post(f"/v1/payments/{pids[i]}/capture", b"{}", f"{rng_key}-c{i}", 200)

            def refund(i: int) -> None:
                post("/v1/refunds", json.dumps({"payment_id": pids[i], "amount": 300}).encode(),
                     f"{rng_key}-r{i}", 201)

            def replay(i: int) -> None:
                post("/v1/payments", replay_body, f"{rng_key}-replay", 201)

            def retrieve(i: int) -> None:
                if http.get(f"/v1/payments/{pids[i]}").status_code != 200:
                    raise RuntimeError("count pass: retrieve failed")

            kinds = [("1 create, auto capture", create_auto), ("2a authorize (manual)", authorize),
                     ("2b capture", capture), ("2c refund (partial)", refund), ("3 replay", replay),
                     ("4 retrieve", retrieve)]
            # Requests are counted in the request's own task (api, bank). The worker's work per request is
            # its webhook deliveries, counted among its loops, which also poll while idle: measure that idle
            # rate first and take it off each batch.
            idle_s = 1.0 if self.opts.smoke else 3.0
            before, t_before = self._counts(), time.monotonic()
            time.sleep(idle_s)
            after, t_after = self._counts(), time.monotonic()
            idle_rate = {proc: {k: (v - before[proc].get(k, 0)) / (t_after - t_before) for k, v in c.items()}
                         for proc, c in after.items()}
            out: dict[str, Any] = {}
            for label, fn in kinds:
                before, t_before = self._counts(), time.monotonic()
                for i in range(n):
                    fn(i)
                self.drain()
                after, t_after = self._counts(), time.monotonic()
                per: dict[str, dict[str, float]] = {}
                for proc, c in after.items():
                    per[proc] = {}
                    for k in sorted(c):
                        if proc == "worker":
                            noise = idle_rate[proc].get(k, 0.0) * (t_after - t_before)
                            name = k.removeprefix("bg:")
                        elif k.startswith("bg:"):
                            continue
                        else:
                            noise, name = 0.0, k
                        value = max(0.0, c[k] - before[proc].get(k, 0) - noise) / n
                        if round(value, 2):
                            per[proc][name] = round(per[proc].get(name, 0.0) + value, 2)
                out[label] = per
        self.report["round_trips"] = {"requests_per_kind": n, "per_request": out, "idle_per_s": {
            proc: {k: round(v, 2) for k, v in rates.items() if v} for proc, rates in idle_rate.items()}}
        self.stack.stop()
        self.stack = None

    def _counts(self) -> dict[str, dict[str, int]]:
        """The counters of api, bank and worker, as dumped after this moment (they dump every 100 ms)."""
        assert self.stack is not None
        now = time.time()
        out: dict[str, dict[str, int]] = {}
        for name in ("api", "bank", "worker"):
            path = self.stack.counts_file(name)

            def fresh(p: Path = path) -> bool:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    return bool(json.loads(p.read_text())["at"] > now + 0.05)
                return False

            if not wait_for(fresh, 10, interval=0.05):
                raise RuntimeError(f"sqlcount: no fresh counts from {name}")
            out[name] = json.loads(path.read_text())["counts"]
        return out

    # -- pgbench ---------------------------------------------------------------------------------------
    def pgbench(self) -> None:
        exe = shutil.which("pgbench")
        if exe is None:
            self.note("pgbench not found (Debian: postgresql-client); comparison skipped")
            return
        u = urlsplit(self.opts.server_url)
        conn_args = ["-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
        self.dbs.create(self.dbs.pgbench)
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        if u.password:
            env["PGPASSWORD"] = u.password
        scale = self.opts.pgbench_scale
        print(f"bench: pgbench -i -s {scale}, then -c {self.opts.connections} -j {self.opts.threads} "
              f"-T {round(self.opts.duration)} ...", flush=True)
        init = subprocess.run([exe, "-i", "-s", str(scale), "-q", *conn_args, self.dbs.pgbench], env=env,
                              capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL)
        if init.returncode != 0:
            raise RuntimeError(f"pgbench -i failed: {init.stderr[-2000:]}")
        cmd = [exe, "-c", str(self.opts.connections), "-j", str(self.opts.threads), "-T",
               str(max(1, round(self.opts.duration))), *conn_args, self.dbs.pgbench]
        out_path = self.workdir / "pgbench.out"
        with open(out_path, "wb") as out:
            popen = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            # the window starts once pgbench's connections are up, so their backends are in it
            wait_for(lambda: self._backends(self.dbs.pgbench) >= self.opts.connections or _exited(popen),
                     15, interval=0.05)
            groups: dict[str, list[psutil.Process]] = {}
            self._add_postgres(groups, {self.dbs.pgbench})
            window = measure.Window(groups, interval_s=0.25)
            window.start()
            cpu, cpu_sys, _ = _wait_with_rusage(popen, self.opts.duration + 120)
            procs = window.stop()
        text = out_path.read_text(errors="replace")
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
        lat = re.search(r"latency average = ([\d.]+) ms", text)
        if popen.returncode != 0 or tps is None:
            raise RuntimeError(f"pgbench failed ({popen.returncode}):\n{text[-2000:]}")
        processes = {("postgres (pgbench db)" if k == "postgres (bench dbs)" else k):
                     {"cpu_pct": round(v.cpu_pct, 1), "sys_pct": round(v.sys_pct, 1), "rss_mb": round(v.rss_mb, 1),
                      "count": v.count} for k, v in procs.items()}
        elapsed = max(window.elapsed, 0.001)
        processes["generator (pgbench)"] = {"cpu_pct": round(100 * cpu / elapsed, 1),
                                            "sys_pct": round(100 * cpu_sys / elapsed, 1), "rss_mb": 0.0, "count": 1}
        self.report["pgbench"] = {
            "scale": scale, "connections": self.opts.connections, "threads": self.opts.threads,
            "duration_s": max(1, round(self.opts.duration)), "tps": float(tps.group(1)),
            "latency_avg_ms": float(lat.group(1)) if lat else None, "processes": processes,
            "machine_busy_pct": round(window.machine_busy_pct, 1),
        }
        self.dbs.drop(self.dbs.pgbench)

    def _backends(self, db: str) -> int:
        row = self.admin().execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db,)).fetchone()
        return int(row[0]) if row else 0

    # -- everything --------------------------------------------------------------------------------------
    def run(self) -> int:
        started = time.monotonic()
        try:
            self.setup()
            for sc in (sc for sc in SCENARIOS if sc.number in self.opts.only):
                self.report["scenarios"][str(sc.number)] = self.run_scenario(sc)
            if self.opts.profile:
                self.profile()
            if self.opts.count_requests > 0:
                self.count_round_trips()
            if self.stack is not None:
                self.stack.stop()
                self.stack = None
            if self.opts.pgbench:
                self.pgbench()
        finally:
            if self.stack is not None:
                self.stack.stop()
            for conn in (self.gw_conn, self.admin_conn):
                if conn is not None:
                    conn.close()
            self.dbs.drop_all()
        self.report["total_s"] = round(time.monotonic() - started, 1)
        self.finish()
        if not self.opts.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)
        bad = [s for s in self.report["scenarios"].values() if s["requests"] == 0 or s["errors"]]
        return 1 if bad else 0

    def finish(self) -> None:
        s1, pgb = self.report["scenarios"].get("1"), self.report.get("pgbench")
        if s1 and pgb and pgb["tps"] and "payments_per_s" in s1:
            self.report["ratio_payments_per_pgbench_tps"] = round(s1["payments_per_s"] / pgb["tps"], 4)
        RESULTS.mkdir(exist_ok=True)
        path = self.opts.json_out or RESULTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{self.token}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.report, indent=2) + "\n")
        print(render(self.report))
        print(f"bench: JSON result in {path}")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # a SIGTERM (a CI timeout, say) unwinds like an exception: processes stopped, databases dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    resource.setrlimit(resource.RLIMIT_NOFILE, _nofile())
    return Bench(opts).run()


def _nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (min(max(soft, 65536), hard) if hard != resource.RLIM_INFINITY else max(soft, 65536), hard)


if __name__ == "__main__":
    raise SystemExit(main())
