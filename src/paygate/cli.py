"""The `paygate` command line (API.md §13)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from paygate.cli_merchant import merchant_app
from paygate.config import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="paygate: a self-hostable payment gateway.")
app.add_typer(merchant_app, name="merchant")

DEMO_EMAIL = "demo@paygate.local"
DEMO_PASSWORD = "paygate-demo"


def _require_db(settings: Settings) -> str:
    if not settings.database_url:
        typer.echo("PAYGATE_DATABASE_URL is not set (or use `paygate serve`, which starts its own).", err=True)
        raise typer.Exit(2)
    return settings.database_url


def _default_workers() -> int:
    """One API process per core serves best here (see docs/decisions/0004)."""
    return max(1, os.cpu_count() or 1)


def migrate_all(settings: Settings) -> list[str]:
    from paygate.store import migrate as m

    url = _require_db(settings)
    applied = m.apply(url, "public", "paygate.store.migrations")
    applied += m.apply(settings.bank_database_url or url, "bank", "paygate.bank.migrations")
    return applied


@app.command()
def migrate() -> None:
    """Apply the gateway's and the bank's migrations."""
    applied = migrate_all(get_settings())
    typer.echo("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int | None, typer.Option(help="API processes sharing the port (default: one per core).")] = None,
) -> None:
    """Serve the HTTP API (never migrates by itself)."""
    import uvicorn

    _require_db(get_settings())
    uvicorn.run("paygate.api.app:create_app", factory=True, host=host, port=port,
                workers=workers or _default_workers(), log_level="warning", access_log=False,
                loop="uvloop", http="httptools", timeout_graceful_shutdown=10,
                proxy_headers=False)  # the client address is decided by PAYGATE_TRUSTED_PROXIES (http/clientaddr.py)


@app.command()
def bank(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
) -> None:
    """Serve the simulated acquiring bank."""
    import uvicorn

    from paygate.bank.app import create_app

    settings = get_settings()
    url = settings.bank_database_url or _require_db(settings)
    bank_app = create_app(url, settings, pool_max_size=min(10, settings.db_pool_max))
    uvicorn.run(bank_app, host=host, port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools", timeout_graceful_shutdown=5)


@app.command()
def worker() -> None:
    """Run the background loops: recovery, expiry, webhook delivery, key completion and purges."""
    from paygate.worker.main import run

    asyncio.run(run(get_settings()))


async def _create_merchant(settings: Settings, name: str, email: str, password: str) -> dict[str, str]:
    from paygate.services import merchants
    from paygate.store.db import make_pool

    pool = make_pool(_require_db(settings), min_size=1, max_size=1)
    await pool.open()
    try:
        m = await merchants.create(pool, name=name, email=email, password=password)
    finally:
        await pool.close()
    return {"merchant_id": m.merchant_id, "secret_key": m.secret_key, "publishable_key": m.publishable_key}


async def _merchant_count(url: str) -> int:
    from paygate.store import merchants
    from paygate.store.db import make_pool

    pool = make_pool(url, min_size=1, max_size=1)
    await pool.open()
    try:
        async with pool.connection() as conn:
            return await merchants.count(conn)
    finally:
        await pool.close()


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="API port.")] = 8080,
    bank_port: Annotated[int, typer.Option(help="Bank simulator port.")] = 8787,
    workers: Annotated[int, typer.Option(help="API processes.")] = 1,
) -> None:
    """Everything on one machine: embedded PostgreSQL (unless PAYGATE_DATABASE_URL), bank, API, worker."""
    settings = get_settings()
    embedded = None
    url = settings.database_url
    if not url:
        from paygate.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(Path(settings.home))
        typer.echo(f"starting embedded PostgreSQL under {settings.home} …")
        url = embedded.start()
    env = {**os.environ, "PAYGATE_DATABASE_URL": url}
    env.setdefault("PAYGATE_BANK_URL", f"http://127.0.0.1:{bank_port}")
    env.setdefault("PAYGATE_PUBLIC_URL", f"http://127.0.0.1:{port}")
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        applied = migrate_all(settings)
        if applied:
            typer.echo("migrations applied: " + ", ".join(applied))
        if asyncio.run(_merchant_count(url)) == 0:
            demo = asyncio.run(_create_merchant(settings, "Demo Store", DEMO_EMAIL, DEMO_PASSWORD))
            _announce_demo(Path(settings.home), demo, port)
        exe = [sys.executable, "-m", "paygate"]
        procs.append(subprocess.Popen([*exe, "bank", "--port", str(bank_port)], env=env))
        _wait_healthy(f"http://127.0.0.1:{bank_port}/healthz", procs[-1])
        procs.append(subprocess.Popen([*exe, "api", "--port", str(port), "--workers", str(workers)], env=env))
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", procs[-1])
        procs.append(subprocess.Popen([*exe, "worker"], env=env))
        typer.echo(f"paygate is up: API http://127.0.0.1:{port}  docs http://127.0.0.1:{port}/docs  "
                   f"dashboard http://127.0.0.1:{port}/dashboard  bank http://127.0.0.1:{bank_port}  (Ctrl-C stops)")
        _supervise(procs)
    finally:
        _stop_all(procs)
        if embedded is not None:
            embedded.stop()
        typer.echo("paygate stopped.")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], within_s: float = 60.0) -> None:
    """Start the next part only once this one answers, so a first request never races a cold start."""
    import httpx

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    typer.echo(f"{url} did not become healthy.", err=True)
    raise typer.Exit(1)


def _announce_demo(home: Path, demo: dict[str, str], port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    typer.echo("\nDemo merchant created (keys are shown once; a copy is in "
               f"{home / 'demo-merchant.json'}, readable only by you):")
    typer.echo(f"  merchant_id      {demo['merchant_id']}\n  secret_key       {demo['secret_key']}\n"
               f"  publishable_key  {demo['publishable_key']}\n"
               f"  dashboard        http://127.0.0.1:{port}/dashboard  login {DEMO_EMAIL} / {DEMO_PASSWORD}\n")
    path = home / "demo-merchant.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**demo, "email": DEMO_EMAIL, "password": DEMO_PASSWORD}, fh)


def _supervise(procs: list[subprocess.Popen[bytes]]) -> None:
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stopping:
        if any(p.poll() is not None for p in procs):
            typer.echo("a paygate process exited; stopping the rest.", err=True)
            return
        time.sleep(0.2)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@app.command()
def drill(
    payments: Annotated[int, typer.Option(help="Payments to drive.")] = 300,
    clients: Annotated[int, typer.Option(help="Concurrent clients.")] = 8,
    server_url: Annotated[str, typer.Option(help="Admin URL of a local PostgreSQL to create the drill database on.")]
    = "postgresql://postgres@127.0.0.1:5432/postgres",
    kill_min: Annotated[float, typer.Option(help="Shortest pause between kills (s).")] = 1.5,
    kill_max: Annotated[float, typer.Option(help="Longest pause between kills (s).")] = 4.0,
    failure_rate: Annotated[float, typer.Option(help="Bank: 500 without acting.")] = 0.05,
    lost_rate: Annotated[float, typer.Option(help="Bank: act, then 500.")] = 0.05,
    latency_ms: Annotated[str, typer.Option(help="Bank latency min-max; above 1000 outlasts our timeout.")] = "0-1200",
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    keep_database: Annotated[bool, typer.Option(help="Keep the drill database for inspection.")] = False,
) -> None:
    """Chaos drill: kill processes, break the bank, then prove nothing was charged twice or lost."""
    from paygate.drill import DrillConfig, run

    cfg = DrillConfig(server_url=server_url, payments=payments, clients=clients, kill_every_s=(kill_min, kill_max),
                      failure_rate=failure_rate, lost_rate=lost_rate, latency_ms=latency_ms, seed=seed,
                      keep_database=keep_database)
    raise typer.Exit(run(cfg))


def main() -> None:
    app()
