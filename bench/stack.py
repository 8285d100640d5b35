"""The system under test: throwaway databases and paygate's processes, all on this machine.

Every database is created fresh per run (`paygate_bench_<pid>_<hex>...`) and dropped at the end; a run that
was killed leaves its databases behind, so a later run drops those whose process is gone (and only those:
other databases on the server are never touched). Each process runs in its own session so that stopping it
reaches uvicorn's worker processes too (paygate/supervise.py, the supervisor `paygate serve` uses).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from paygate import serve_secrets
from paygate.polling import wait_for
from paygate.supervise import PAYGATE, Process, SuperviseError, free_port

BENCH_DIR = Path(__file__).resolve().parent
_OURS = re.compile(r"^paygate_bench_(\d+)_[0-9a-f]+(_bank|_pgbench)?$")


def with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class Databases:
    """The run's own databases on a local server: gateway, bank (kept apart so that commits can be
    attributed to each), and pgbench's."""

    def __init__(self, server_url: str, token: str) -> None:
        host = urlsplit(server_url).hostname
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise SystemExit(f"refusing to benchmark against a non-local server: {host}")
        self.server_url = server_url
        base = f"paygate_bench_{os.getpid()}_{token}"
        self.gateway, self.bank, self.pgbench = base, f"{base}_bank", f"{base}_pgbench"
        self.created: list[str] = []

    def url(self, name: str) -> str:
        return with_db(self.server_url, name)

    def sweep_abandoned(self) -> list[str]:
        """Drop bench databases of runs whose process is gone (a killed run cannot clean up)."""
        dropped = []
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'paygate\\_bench\\_%'"):
                match = _OURS.match(str(name))
                if match is None or psutil.pid_exists(int(match.group(1))):
                    continue
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                dropped.append(str(name))
        return dropped

    def create(self, name: str) -> str:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            with contextlib.suppress(psycopg.Error):
                self.drop(name)


class Child(Process):
    """One long-running process of the stack (paygate's own supervisor), its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], health: str | None, log: Path) -> None:
        super().__init__(name, argv, env, health_url=health, log_path=log)

    def start(self, timeout: float = 30) -> None:
        try:
            super().start(timeout)
        except SuperviseError as exc:
            raise RuntimeError(str(exc)) from None

    def processes(self) -> list[psutil.Process]:
        """The process and its descendants (uvicorn's workers), alive now."""
        if self.popen is None or self.popen.poll() is not None:
            return []
        try:
            root = psutil.Process(self.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self, grace_s: float = 15) -> None:
        """SIGTERM to the group (a graceful shutdown), SIGKILL after 15 s."""
        super().stop(grace_s)


class Stack:
    """Bank, API (N processes), worker and a webhook receiver over the run's databases.

    `counted=True` runs each paygate process (one API process) under bench/sqlcount.py, which counts
    psycopg's round trips, statements and transactions into `<workdir>/sqlcount-<name>.json`.
    """

    def __init__(self, dbs: Databases, workdir: Path, api_workers: int, *, counted: bool = False,
                 pool_max: int | None = None) -> None:
        self.dbs, self.workdir, self.counted = dbs, workdir, counted
        self.api_workers = 1 if counted else api_workers
        self.api_port, self.bank_port, self.receiver_port = free_port(), free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.bank_url = f"http://127.0.0.1:{self.bank_port}"
        self.receiver_url = f"http://127.0.0.1:{self.receiver_port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("PAYGATE_")}
        self.env = {
            **base, "PYTHONUNBUFFERED": "1",
            "PAYGATE_DATABASE_URL": dbs.url(dbs.gateway), "PAYGATE_BANK_DATABASE_URL": dbs.url(dbs.bank),
            "PAYGATE_BANK_URL": self.bank_url, "PAYGATE_PUBLIC_URL": self.api_url,
            "PAYGATE_HOME": str(workdir / "home"), "PAYGATE_LOG_LEVEL": "warning",
            # one merchant sends everything: the per-merchant rate limit would measure itself, not paygate
            "PAYGATE_RATE_LIMIT_PER_S": "0",
            # in production, as deployed, with fresh random secrets; the receiver is on 127.0.0.1
            "PAYGATE_WEBHOOK_ALLOW_PRIVATE": "true", **serve_secrets.fresh(),
        }
        if pool_max is not None:
            self.env["PAYGATE_DB_POOL_MAX"] = str(pool_max)
            self.env["PAYGATE_DB_POOL_MIN"] = str(min(2, pool_max))
        self.children: dict[str, Child] = {}

    def _paygate(self, name: str, *args: str) -> list[str]:
        if self.counted:
            return [sys.executable, str(BENCH_DIR / "sqlcount.py"), str(self.counts_file(name)), *args]
        return [str(PAYGATE), *args]

    def counts_file(self, name: str) -> Path:
        return self.workdir / f"sqlcount-{name}.json"

    def migrate(self) -> None:
        self.run_paygate("migrate")

    def run_paygate(self, *args: str) -> str:
        done = subprocess.run([str(PAYGATE), *args], env=self.env, capture_output=True, text=True, timeout=120,
                              check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"paygate {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def create_merchant(self, token: str) -> str:
        out = self.run_paygate("merchant", "create", "--name", "Bench", "--email", f"bench-{token}@example.com",
                               "--password", f"pw-{token}", "--json")
        line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
        return str(json.loads(line)["secret_key"])

    def start(self) -> None:
        log = self.workdir
        wanted = [
            Child("receiver", [sys.executable, str(BENCH_DIR / "receiver.py"), "--port", str(self.receiver_port)],
                  self.env, f"{self.receiver_url}/healthz", log / "receiver.log"),
            Child("bank", self._paygate("bank", "bank", "--port", str(self.bank_port)), self.env,
                  f"{self.bank_url}/healthz", log / "bank.log"),
            Child("api", self._paygate("api", "api", "--port", str(self.api_port), "--workers",
                                       str(self.api_workers)), self.env, f"{self.api_url}/healthz", log / "api.log"),
            Child("worker", self._paygate("worker", "worker"), self.env, None, log / "worker.log"),
        ]
        try:
            for child in wanted:
                self.children[child.name] = child
                child.start()
            if self.api_workers > 1:  # every worker process answering, not just the first one up
                wait_for(lambda: len(self.children["api"].processes()) > self.api_workers, 30)
        except BaseException:
            self.stop()
            raise

    def api_worker_pids(self) -> list[int]:
        procs = self.children["api"].processes()
        if len(procs) <= 1:
            return [p.pid for p in procs]
        return [p.pid for p in procs[1:] if "resource_tracker" not in " ".join(_cmdline(p))]

    def stop(self) -> None:
        """The API first (it calls the bank), the receiver last (deliveries in flight)."""
        for name in ("api", "worker", "bank", "receiver"):
            child = self.children.pop(name, None)
            if child is not None:
                child.stop()


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
