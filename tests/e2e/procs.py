"""Real `paygate` processes for end-to-end and chaos tests: spawn, wait until healthy, kill, restart.

The supervision itself is paygate's own (paygate/supervise.py, also used by `paygate serve`, the drill
and the benchmark): each process in its own process group (so `kill` reaches uvicorn's worker
processes too), readiness polled, never slept for. Here: the environment, and output in a log file per
process, which the fixtures print when a test fails.

Stacks run as deployed: in production, with fresh random secrets per stack (API.md §19).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from paygate import serve_secrets
from paygate.supervise import PAYGATE, Process, free_port
from paygate.supervise import SuperviseError as ProcError
from tests.polling import wait_for

__all__ = ["PAYGATE", "MakeStack", "Proc", "ProcError", "Stack", "bank_proc_name", "child_env", "free_port",
           "start_stack", "wait_for"]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """Our environment without any PAYGATE_* of the developer's shell, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYGATE_")}
    return {**base, "PYTHONUNBUFFERED": "1", **env}


class Proc(Process):
    """One `paygate <args>` subprocess (or another program, for testing the harness itself), its output
    in `<log_dir>/<name>.log`."""

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
        self.args = list(args)
        self.workdir = log_dir or Path(tempfile.mkdtemp(prefix=f"paygate-{name}-"))
        super().__init__(name, [*(program or [str(PAYGATE)]), *args], child_env(env), health_url=health_url,
                         log_path=self.workdir / f"{name}.log", cwd=self.workdir)

    def __repr__(self) -> str:
        return f"Proc({self.name!r}, pid={self.pid}, args={self.args!r})"

    def start(self, timeout: float = 20) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().start(timeout)

    def restart(self, timeout: float = 20) -> None:
        super().restart(timeout)


@dataclass
class Stack:
    """A gateway as deployed: `paygate bank` (one per acquirer), `paygate api` and (usually) `paygate worker`
    over one database; `procs` by name ("bank" — or "bank_alpha", "bank_beta" … for named acquirers —,
    "api", "worker") for kill/restart in chaos tests. `bank_urls` is acquirer name → URL, in configuration
    order; `bank_url` the first."""

    api_url: str
    bank_url: str
    database_url: str
    env: dict[str, str]
    workdir: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    bank_urls: dict[str, str] = field(default_factory=dict)

    def bank_proc(self, name: str) -> Proc:
        """The simulator process of acquirer `name`."""
        return self.procs[bank_proc_name(name)]

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


def bank_proc_name(acquirer: str) -> str:
    return "bank" if acquirer == "bank" else f"bank_{acquirer}"


def start_stack(
    database_url: str,
    workdir: Path,
    *,
    worker: bool = True,
    api_workers: int | None = 1,
    timeout: float = 30,
    env: dict[str, str] | None = None,
    acquirers: Sequence[str] | None = None,
) -> Stack:
    """Start bank(s), API and worker on free ports over `database_url` (already migrated); `env` adds or
    overrides PAYGATE_* settings, e.g. {"PAYGATE_BANK_FAILURE_RATE": "0.3"}. `acquirers=("alpha", "beta")`
    starts one `paygate bank --name` per name and sets PAYGATE_ACQUIRERS (their schemas are migrated
    first, with `paygate migrate`); unset, the single default `bank`."""
    if isinstance(acquirers, str):
        acquirers = [a.strip() for a in acquirers.split(",") if a.strip()]
    names = tuple(acquirers or ("bank",))
    bank_urls = {name: f"http://127.0.0.1:{free_port()}" for name in names}
    api_port = free_port()
    bank_url, api_url = next(iter(bank_urls.values())), f"http://127.0.0.1:{api_port}"
    full_env = {
        "PAYGATE_DATABASE_URL": database_url,
        "PAYGATE_BANK_URL": bank_url,
        "PAYGATE_PUBLIC_URL": api_url,
        "PAYGATE_BANK_UPI_DELAY_MS": "100-300",
        "PAYGATE_DB_POOL_MAX": "6",  # many stacks share one server's max_connections
        "PAYGATE_HOME": str(workdir / "home"),
        # receivers in tests listen on 127.0.0.1, which production refuses as a webhook destination
        "PAYGATE_WEBHOOK_ALLOW_PRIVATE": "true",
        "PAYGATE_WORKER_METRICS_PORT": "0",  # stacks run side by side: a test that wants them picks a port
        **serve_secrets.fresh(),
        **({"PAYGATE_ACQUIRERS": ",".join(f"{n}={u}" for n, u in bank_urls.items())} if acquirers else {}),
        **(env or {}),
    }
    stack = Stack(api_url=api_url, bank_url=bank_url, database_url=database_url, env=full_env, workdir=workdir,
                  bank_urls=bank_urls)
    if acquirers:
        stack.run("migrate")  # the template database has the default bank's schema only
    api_args = ["api", "--port", str(api_port)]
    if api_workers is not None:
        api_args += ["--workers", str(api_workers)]
    wanted = [
        *(Proc(bank_proc_name(name), ["bank", "--name", name, "--port", url.rsplit(":", 1)[1]], full_env,
               f"{url}/healthz", log_dir=workdir) for name, url in bank_urls.items()),
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
        acquirers: Sequence[str] | None = None,  # ("alpha", "beta") or "alpha,beta"
        **env: str,
    ) -> Stack: ...
