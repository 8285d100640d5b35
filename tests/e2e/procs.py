"""Real `paygate` processes for end-to-end and chaos tests: spawn, wait until healthy, kill, restart.

Each process runs in its own process group (so `kill` reaches uvicorn's worker processes too) with
its output in a log file, which the fixtures print when a test fails. Readiness is polled, never
slept for.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import psutil

from tests.polling import wait_for as wait_for  # re-exported: `procs.wait_for` is the shared one

# the console script next to this interpreter (.venv/bin/paygate); not resolved, a venv's python
# is a symlink to the system one
PAYGATE = Path(sys.executable).parent / "paygate"
_PAUSE_SIGNALS = (signal.SIGSTOP, signal.SIGCONT, signal.SIGTSTP)


class ProcError(RuntimeError):
    """A process did not start, or did not stop; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(env: dict[str, str]) -> dict[str, str]:
    """Our environment without any PAYGATE_* of the developer's shell, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYGATE_")}
    return {**base, "PYTHONUNBUFFERED": "1", **env}


def _group_alive(pgid: int) -> bool:
    """Any live (not zombie) process left in the group? Our init does not reap orphans."""
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


class Proc:
    """One `paygate <args>` subprocess (or another program, for testing the harness itself)."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        health_url: str | None,
        *,
        log_dir: Path | None = None,
        program: list[str] | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.health_url = health_url
        self.workdir = log_dir or Path(tempfile.mkdtemp(prefix=f"paygate-{name}-"))
        self.log_path = self.workdir / f"{name}.log"
        self.program = program or [str(PAYGATE)]
        self.returncode: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"Proc({self.name!r}, pid={self.pid}, args={self.args!r})"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, timeout: float = 20) -> None:
        """Spawn, then wait until `health_url` answers 200 (without one: until spawned)."""
        if self._popen is not None:
            raise ProcError(f"{self.name} is already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.args)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                [*self.program, *self.args],
                env=child_env(self.env),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() reaches its children
            )
        self.returncode = None
        if self.health_url is None:
            if self._popen.poll() is not None:
                self._fail("exited at once")
            return
        if not wait_for(self._healthy, timeout):
            self._fail(f"not healthy at {self.health_url} within {timeout:.0f}s")

    def _healthy(self) -> bool:
        assert self._popen is not None and self.health_url is not None
        if self._popen.poll() is not None:
            self._fail(f"exited with {self._popen.returncode} before becoming healthy")
        try:
            return httpx.get(self.health_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _fail(self, why: str) -> None:
        self.kill()
        raise ProcError(f"{self.name}: {why}\n--- {self.log_path} ---\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group and wait until every member is gone.
        SIGSTOP/SIGCONT are sent without waiting (see pause/resume)."""
        if self._popen is None:
            return
        pgid = self._popen.pid  # a session leader: its pid is the group id
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        if sig in _PAUSE_SIGNALS:
            return
        self.returncode = self._popen.wait()
        self._popen = None
        if not wait_for(lambda: not _group_alive(pgid), 10):
            raise ProcError(f"{self.name}: processes of group {pgid} survive signal {sig}")

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL after 10 s."""
        if self._popen is None:
            return
        pgid = self._popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGCONT)  # a paused process could not act on SIGTERM
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.returncode = self._popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with open(self.log_path, "ab") as log:
                log.write(b"--- harness: no exit 10s after SIGTERM, sending SIGKILL\n")
        self.kill(signal.SIGKILL)  # also the group's stragglers

    def restart(self, timeout: float = 20) -> None:
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung server)."""
        self.kill(signal.SIGSTOP)

    def resume(self) -> None:
        self.kill(signal.SIGCONT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


@dataclass
class Stack:
    """A gateway as deployed: `paygate bank`, `paygate api` and (usually) `paygate worker` over one
    database; `procs` by name ("bank", "api", "worker") for kill/restart in chaos tests."""

    api_url: str
    bank_url: str
    database_url: str
    env: dict[str, str]
    workdir: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A one-shot `paygate` command against this stack (same environment); raises if it fails."""
        done = subprocess.run(
            [str(PAYGATE), *args],
            env=child_env(self.env),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ProcError(
                f"paygate {' '.join(args)} exited with {done.returncode}\n"
                f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
            )
        return done

    def merchant(self, name: str | None = None) -> dict[str, str]:
        """Create a merchant with `paygate merchant create --json`: its merchant_id, secret_key and
        publishable_key, plus the name, email and password it was created with (for the dashboard)."""
        suffix = secrets.token_hex(4)
        name = name or f"Test Merchant {suffix}"
        email = f"merchant-{suffix}@example.com"
        password = f"pw-{secrets.token_hex(8)}"
        done = self.run("merchant", "create", "--name", name, "--email", email, "--password", password, "--json")
        created = _last_json_object(done.stdout)
        return {**{k: str(v) for k, v in created.items()}, "name": name, "email": email, "password": password}

    def stop(self) -> None:
        """Stop every process, the API first (it calls the bank)."""
        errors = []
        for proc in reversed(list(self.procs.values())):
            try:
                proc.stop()
            except ProcError as exc:
                errors.append(str(exc))
        if errors:
            raise ProcError("\n".join(errors))

    def logs(self, lines: int = 60) -> str:
        return "\n".join(f"===== {p.name} ({p.log_path}) =====\n{p.log_tail(lines)}" for p in self.procs.values())


def _last_json_object(stdout: str) -> dict[str, object]:
    """The command's JSON output, tolerating log lines printed before it."""
    candidates = [stdout, *reversed([line for line in stdout.splitlines() if line.startswith("{")])]
    for text in candidates:
        with contextlib.suppress(ValueError):
            value = json.loads(text)
            if isinstance(value, dict):
                return value
    raise ProcError(f"no JSON object in the output:\n{stdout}")


def start_stack(
    database_url: str,
    workdir: Path,
    *,
    worker: bool = True,
    api_workers: int | None = 1,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> Stack:
    """Start bank, API and worker on free ports over `database_url` (already migrated); `env` adds or
    overrides PAYGATE_* settings, e.g. {"PAYGATE_BANK_FAILURE_RATE": "0.3"}."""
    bank_port, api_port = free_port(), free_port()
    bank_url, api_url = f"http://127.0.0.1:{bank_port}", f"http://127.0.0.1:{api_port}"
    full_env = {
        "PAYGATE_DATABASE_URL": database_url,
        "PAYGATE_BANK_URL": bank_url,
        "PAYGATE_PUBLIC_URL": api_url,
        "PAYGATE_BANK_UPI_DELAY_MS": "100-300",
        "PAYGATE_DB_POOL_MAX": "6",  # many stacks share one server's max_connections
        "PAYGATE_HOME": str(workdir / "home"),
        **(env or {}),
    }
    stack = Stack(api_url=api_url, bank_url=bank_url, database_url=database_url, env=full_env, workdir=workdir)
    api_args = ["api", "--port", str(api_port)]
    if api_workers is not None:
        api_args += ["--workers", str(api_workers)]
    wanted = [
        Proc("bank", ["bank", "--port", str(bank_port)], full_env, f"{bank_url}/healthz", log_dir=workdir),
        Proc("api", api_args, full_env, f"{api_url}/healthz", log_dir=workdir),
    ]
    if worker:
        wanted.append(Proc("worker", ["worker"], full_env, None, log_dir=workdir))
    try:
        for proc in wanted:
            stack.procs[proc.name] = proc
            proc.start(timeout)
    except BaseException:
        with contextlib.suppress(ProcError):
            stack.stop()
        raise
    return stack


class MakeStack(Protocol):
    """The `make_stack` fixture: `make_stack(PAYGATE_BANK_FAILURE_RATE="0.5")`."""

    def __call__(
        self,
        *,
        worker: bool = True,
        api_workers: int | None = 1,
        database_url: str | None = None,
        **env: str,
    ) -> Stack: ...
