"""In production `paygate api`, `worker` and `bank` refuse to start on a missing, short or shipped secret:
exit code 2 and one line on stderr naming the variable (API.md §19). The real processes, started as an
operator would."""

from __future__ import annotations

import base64
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from paygate import config, serve_secrets
from tests.e2e.procs import PAYGATE, Proc, child_env, free_port

SHIPPED = {
    "PAYGATE_SECRET_KEY": config.DEFAULT_SECRET_KEY,
    "PAYGATE_FINGERPRINT_KEY": config.DEFAULT_FINGERPRINT_KEY,
    "PAYGATE_BANK_WEBHOOK_SECRET": config.DEFAULT_BANK_WEBHOOK_SECRET,
    "PAYGATE_VAULT_KEY": config.DEFAULT_VAULT_KEY,
}
SHORT = "whsec_" + base64.b64encode(b"sixteen bytes!!!").decode()  # 16 bytes, whichever variable
GATEWAY = list(SHIPPED)
# uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: exit "by SIGTERM", not SIGKILL's -9
STOPPED_CLEANLY = (0, -signal.SIGTERM)


def _variants(var: str) -> dict[str, dict[str, str | None]]:
    return {"missing": {var: None}, "short": {var: SHORT}, "shipped": {var: SHIPPED[var]}}


def _run(command: str, overrides: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    env = child_env({**serve_secrets.fresh(), "PAYGATE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"})
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    args = [command] if command == "worker" else [command, "--port", str(free_port())]
    return subprocess.run([str(PAYGATE), *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.mark.parametrize(("command", "var"), [*[("api", v) for v in GATEWAY], *[("worker", v) for v in GATEWAY],
                                              ("bank", "PAYGATE_BANK_WEBHOOK_SECRET")])
def test_a_weak_secret_stops_the_process_with_one_line(command: str, var: str) -> None:
    for variant, overrides in _variants(var).items():
        done = _run(command, overrides)
        assert done.returncode == 2, (variant, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, (variant, done.stderr)
        assert f"{var} " in lines[0] and "production" in lines[0], (variant, lines[0])
        want = {"missing": "is not set", "short": "carries 16 bytes", "shipped": "shipped in paygate's source"}
        assert want[variant] in lines[0], (variant, lines[0])
        assert done.stdout == ""


def test_the_bank_needs_only_its_callback_secret(make_database: Callable[..., str], tmp_path: Path) -> None:
    port = free_port()
    env = {"PAYGATE_DATABASE_URL": make_database(),
           "PAYGATE_BANK_WEBHOOK_SECRET": serve_secrets.fresh()["PAYGATE_BANK_WEBHOOK_SECRET"]}
    bank = Proc("bank", ["bank", "--port", str(port)], env, f"http://127.0.0.1:{port}/healthz", log_dir=tmp_path)
    bank.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        bank.stop()
    assert bank.returncode in STOPPED_CLEANLY and "SIGKILL" not in bank.log()


def test_development_allows_the_shipped_defaults_with_a_warning(make_database: Callable[..., str],
                                                                 tmp_path: Path) -> None:
    port = free_port()
    env = {"PAYGATE_DATABASE_URL": make_database(), "PAYGATE_ENV": "development"}  # no secret set at all
    api = Proc("api", ["api", "--port", str(port), "--workers", "1"], env, f"http://127.0.0.1:{port}/healthz",
               log_dir=tmp_path)
    api.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        api.stop()
    assert "development_keys_in_use" in api.log() and "PAYGATE_BANK_WEBHOOK_SECRET is not set" in api.log()
    assert api.returncode in STOPPED_CLEANLY and "SIGKILL" not in api.log()


def test_an_unknown_environment_is_refused_with_one_line() -> None:
    done = _run("api", {"PAYGATE_ENV": "prod"})
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["paygate: PAYGATE_ENV: Input should be 'production' or 'development'"]
