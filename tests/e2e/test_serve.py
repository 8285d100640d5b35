"""`paygate serve` as a new user runs it: embedded PostgreSQL, generated secrets, a demo merchant with a
random password, everything up; Ctrl-C (and SIGTERM) stops all of it; a second start reuses it all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from paygate.config import GATEWAY_SECRETS, Settings, env_name, secret_problems
from tests.conftest import MakeDatabase
from tests.e2e.procs import PAYGATE, child_env, free_port
from tests.polling import wait_for

CARD = {"type": "card", "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}


class Serve:
    """One `paygate serve` run over `home`, its output in `home/serve-<n>.log`."""

    def __init__(self, home: Path, run: int) -> None:
        self.home, self.port, self.bank_port = home, free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.log = home / f"serve-{run}.log"
        env = child_env({"PAYGATE_HOME": str(home)})
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(PAYGATE), "serve", "--port", str(self.port), "--bank-port", str(self.bank_port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.family: list[psutil.Process] = []

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return httpx.get(f"{self.api}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(ready, 120), self.output()
        parent = psutil.Process(self.proc.pid)
        # bank, api, worker (postgres daemonizes under pg_ctl); the worker starts just after the API answers
        assert wait_for(lambda: len(parent.children()) >= 3, 30), self.output()
        self.family = parent.children(recursive=True)

    def pay(self, secret_key: str) -> dict[str, Any]:
        r = httpx.post(f"{self.api}/v1/payments", auth=(secret_key, ""), timeout=30,
                       json={"amount": 4200, "currency": "GBP", "payment_method": CARD})
        assert r.status_code == 201 and r.json()["status"] == "captured", r.text
        body: dict[str, Any] = r.json()
        return body

    def create_endpoint(self, secret_key: str) -> httpx.Response:
        return httpx.post(f"{self.api}/v1/webhook_endpoints", auth=(secret_key, ""), timeout=30,
                          headers={"Idempotency-Key": "serve-endpoint"},
                          json={"url": "http://127.0.0.1:9/hooks", "enabled_events": ["*"]})

    def stop(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)
        # serve's own bounds: 15 s grace for its children, 10 s for stragglers, then PostgreSQL's fast shutdown
        # (its checkpoint; up to 60 s, then 10 s after SIGQUIT): a busy machine may need more than a minute
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            alive = [(c.pid, c.cmdline()[1:4], c.status()) for c in self.family if c.is_running()]
            pytest.fail(f"serve did not stop within 120 s; children alive: {alive}\n{self.output()}")
        assert code == 0, self.output()
        assert wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                        for p in self.family), 30)
        assert "paygate stopped." in self.output()

    def kill(self) -> None:
        """Clean up after a failed test: serve and every child (each in its own process group)."""
        for p in [*self.family, psutil.Process(self.proc.pid)] if self.proc.poll() is None else self.family:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.proc.wait()


def test_serve_runs_everything_on_embedded_postgres_and_reuses_its_secrets() -> None:
    home = Path(tempfile.mkdtemp(prefix="paygate-serve-"))  # not tmp_path: the embedded server's user reads it
    runs: list[Serve] = []
    try:
        first = Serve(home, 1)
        runs.append(first)
        first.wait_ready()
        printed = first.output()
        assert "Demo merchant created" in printed and "sk_test_" in printed
        demo_file = home / "demo-merchant.json"
        demo = json.loads(demo_file.read_text())
        assert oct(demo_file.stat().st_mode & 0o777) == "0o600"
        # a random password, printed once with the login
        assert demo["password"] != "paygate-demo" and len(demo["password"]) >= 16
        assert f"login {demo['email']} / {demo['password']}" in printed
        # four random secrets, generated once, readable only by us, strong enough for production
        secrets_file = home / "secrets.json"
        assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
        stored = json.loads(secrets_file.read_text())
        assert sorted(stored) == sorted(env_name(f) for f in GATEWAY_SECRETS)
        as_settings = Settings(**{f: stored[env_name(f)] for f in GATEWAY_SECRETS})
        assert secret_problems(as_settings, GATEWAY_SECRETS) == []
        assert "generated PAYGATE_SECRET_KEY" in printed
        fingerprint = first.pay(demo["secret_key"])["payment_method"]["card"]["fingerprint"]
        made = first.create_endpoint(demo["secret_key"])
        assert made.status_code == 201, made.text
        pg_port = int((home / "postgres.port").read_text().strip())
        pg_password = (home / "postgres.password").read_text().strip()  # no trust auth (embedded/auth.py)
        pg_url = f"postgresql://postgres:{pg_password}@127.0.0.1:{pg_port}/paygate"
        psycopg.connect(pg_url).close()  # it listens on TCP, with a password
        with pytest.raises(psycopg.OperationalError):  # and only with it
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/paygate", connect_timeout=2)
        first.stop(signal.SIGINT)  # Ctrl-C
        with pytest.raises(psycopg.OperationalError):  # the embedded server stopped too
            psycopg.connect(pg_url, connect_timeout=2)

        second = Serve(home, 2)
        runs.append(second)
        second.wait_ready()
        again = second.output()
        assert "generated" not in again and "Demo merchant created" not in again
        assert demo["password"] not in again  # printed once, on the first start only
        assert json.loads(secrets_file.read_text()) == stored
        # the processes run with the same secrets: same card fingerprint, same derived webhook secret
        assert second.pay(demo["secret_key"])["payment_method"]["card"]["fingerprint"] == fingerprint
        # the replay of the create is stored sealed with PAYGATE_SECRET_KEY, and shows the secret derived from it
        replay = second.create_endpoint(demo["secret_key"])
        assert replay.status_code == 201 and replay.json() == made.json(), replay.text
        second.stop(signal.SIGTERM)  # as a service manager stops it
    finally:
        for run in runs:
            if run.proc.poll() is None or any(p.is_running() for p in run.family):
                run.kill()
        shutil.rmtree(home, ignore_errors=True)


def test_serve_starts_one_bank_per_configured_acquirer(make_database: MakeDatabase) -> None:
    """With PAYGATE_ACQUIRERS, `serve` runs `paygate bank --name` for each, on its URL's port (§13 v2)."""
    home = Path(tempfile.mkdtemp(prefix="paygate-serve-acq-"))
    ports = {"alpha": free_port(), "beta": free_port()}
    api_port = free_port()
    env = child_env({"PAYGATE_HOME": str(home), "PAYGATE_DATABASE_URL": make_database(),
                     "PAYGATE_ACQUIRERS": ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in ports.items())})
    log = home / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(PAYGATE), "serve", "--port", str(api_port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for(lambda: "paygate is up" in log.read_text(), 120), log.read_text()
        for name, port in ports.items():
            faults = httpx.get(f"http://127.0.0.1:{port}/v1/faults", timeout=5)
            assert faults.status_code == 200 and faults.json()["failure_rate"] == 0.0, (name, faults.text)
            assert f"{name} http://127.0.0.1:{port}" in log.read_text()
        demo = json.loads((home / "demo-merchant.json").read_text())
        r = httpx.post(f"http://127.0.0.1:{api_port}/v1/payments", auth=(demo["secret_key"], ""), timeout=30,
                       json={"amount": 4200, "currency": "GBP", "payment_method": CARD})
        assert r.status_code == 201 and r.json()["acquirer"] == "alpha", r.text
        ops = httpx.get(f"http://127.0.0.1:{ports['alpha']}/v1/operations", params={"reference": r.json()["id"]})
        assert [o["type"] for o in ops.json()["data"]] == ["authorization", "capture"]
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        for port in ports.values():
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
