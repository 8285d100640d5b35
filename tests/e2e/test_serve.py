"""`paygate serve` as a new user runs it: embedded PostgreSQL, demo merchant, everything up, Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from procs import PAYGATE, child_env, free_port, wait_for


def test_serve_runs_everything_on_embedded_postgres_and_stops_cleanly() -> None:
    home = Path(tempfile.mkdtemp(prefix="paygate-serve-"))  # not tmp_path: the embedded server's user reads it
    port, bank_port = free_port(), free_port()
    env = child_env({"PAYGATE_HOME": str(home)})
    env.pop("PAYGATE_DATABASE_URL", None)
    log = home / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(PAYGATE), "serve", "--port", str(port), "--bank-port", str(bank_port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(ready, 120), log.read_text()
        printed = log.read_text()
        assert "Demo merchant created" in printed and "sk_test_" in printed
        demo = json.loads((home / "demo-merchant.json").read_text())
        assert oct((home / "demo-merchant.json").stat().st_mode & 0o777) == "0o600"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/payments", auth=(demo["secret_key"], ""), timeout=30,
                       json={"amount": 4200, "currency": "GBP", "payment_method": {"type": "card", "card": {
                           "number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}})
        assert r.status_code == 201 and r.json()["status"] == "captured"
        parent = psutil.Process(proc.pid)
        # bank, api, worker (postgres daemonizes under pg_ctl); the worker starts just after the API answers
        assert wait_for(lambda: len(parent.children()) >= 3, 30)
        family = parent.children(recursive=True)
        pg_port = int((home / "postgres.port").read_text().strip())
        pg_password = (home / "postgres.password").read_text().strip()  # no trust auth (embedded/auth.py)
        pg_url = f"postgresql://postgres:{pg_password}@127.0.0.1:{pg_port}/paygate"
        assert psycopg.connect(pg_url).close() is None
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0
        assert wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family), 30)
        assert "paygate stopped." in log.read_text()
        with pytest.raises(psycopg.OperationalError):  # the embedded server stopped too
            psycopg.connect(pg_url, connect_timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
