"""The `paygate` command line (API.md §13)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from paygate.cli_merchant import merchant_app
from paygate.cli_reconcile import reconcile
from paygate.cli_vault import vault_app
from paygate.config import BANK_SECRETS, GATEWAY_SECRETS, Settings, get_settings, production_refusal
from paygate.simbank.config import BankConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help="paygate: a self-hostable payment gateway.")
app.add_typer(merchant_app, name="merchant")
app.add_typer(vault_app, name="vault")
app.command()(reconcile)  # §18

DEMO_EMAIL = "demo@paygate.local"


def _require_db(settings: Settings) -> str:
    if not settings.database_url:
        typer.echo("PAYGATE_DATABASE_URL is not set (or use `paygate serve`, which starts its own).", err=True)
        raise typer.Exit(2)
    return settings.database_url


def _default_workers() -> int:
    """One API process per core serves best here (see docs/decisions/0004)."""
    return max(1, os.cpu_count() or 1)


def bank_names(settings: Settings) -> list[str]:
    """The simulated banks this configuration runs: one per acquirer name (`bank` when none are named)."""
    return list(settings.acquirer_urls)


def migrate_all(settings: Settings) -> list[str]:
    from paygate import sqlmigrate as m
    from paygate.simbank.app import MIGRATIONS as BANK_MIGRATIONS
    from paygate.simbank.config import schema_for

    url = _require_db(settings)
    applied = m.apply(url, "public", "paygate.store.migrations")
    for name in bank_names(settings):  # each named bank in its own schema (API.md §12 v2)
        applied += [f"{name}:{file}" if name != "bank" else file
                    for file in m.apply(settings.bank_database_url or url, schema_for(name), BANK_MIGRATIONS)]
    return applied


def bank_config(settings: Settings, name: str) -> BankConfig:
    """The simulator's own configuration (simbank/config.py) from the PAYGATE_BANK_* settings: the simulator
    never reads the gateway's Settings itself."""
    return BankConfig(webhook_secret=settings.bank_webhook_secret, name=name,
                      failure_rate=settings.bank_failure_rate, lost_rate=settings.bank_lost_rate,
                      latency_ms=settings.bank_latency_ms, duplicate_rate=settings.bank_duplicate_rate,
                      upi_delay_ms=settings.bank_upi_delay_ms, dispute_delay_ms=settings.bank_dispute_delay_ms,
                      callback_delay_ms=settings.bank_callback_delay_ms,
                      dispute_decision_ms=settings.bank_dispute_decision_ms, fee_bps=settings.bank_fee_bps,
                      settlement_interval_s=settings.bank_settlement_interval_s,
                      statement_timeout_ms=settings.db_statement_timeout_ms,
                      lock_timeout_ms=settings.db_lock_timeout_ms)


@app.command()
def migrate() -> None:
    """Apply the gateway's migrations and those of every configured bank."""
    applied = migrate_all(get_settings())
    typer.echo("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def _refuse_weak_secrets(settings: Settings, fields: tuple[str, ...]) -> None:
    """In production, exit 2 with one line on stderr naming the first weak secret (API.md §19)."""
    refusal = production_refusal(settings, fields)
    if refusal is not None:
        typer.echo(refusal, err=True)
        raise typer.Exit(2)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int | None, typer.Option(help="API processes sharing the port (default: one per core).")] = None,
) -> None:
    """Serve the HTTP API (never migrates by itself)."""
    import uvicorn

    from paygate.api import multiproc

    settings = get_settings()
    _refuse_weak_secrets(settings, GATEWAY_SECRETS)
    _require_db(settings)
    # One fresh directory per start for the worker processes' metrics, so /metrics sums them all and no
    # earlier run's counts linger (api/metrics.py); set before uvicorn imports the app in any process.
    metrics_dir = multiproc.fresh_dir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run("paygate.api.app:create_app", factory=True, host=host, port=port,
                    workers=workers or _default_workers(), log_level="warning", access_log=False,
                    loop="uvloop", http="httptools", timeout_graceful_shutdown=10,
                    proxy_headers=False)  # the client address: PAYGATE_TRUSTED_PROXIES (http/clientaddr.py)
    finally:
        multiproc.remove(metrics_dir)


@app.command()
def bank(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    name: Annotated[str, typer.Option(help="Which bank: its state is kept apart (schema bank_NAME).")] = "bank",
) -> None:
    """Serve the simulated acquiring bank."""
    import uvicorn

    from paygate import tracing
    from paygate.logs import configure_logging
    from paygate.simbank.app import create_app
    from paygate.simbank.config import NAME

    if not NAME.fullmatch(name):
        typer.echo(f"paygate bank: --name {name!r} must look like alpha_2 ([a-z][a-z0-9_]{{0,30}})", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    _refuse_weak_secrets(settings, BANK_SECRETS)
    url = settings.bank_database_url or _require_db(settings)
    configure_logging(settings.log_level)
    tracing.setup("paygate-bank")
    bank_app = create_app(url, bank_config(settings, name), pool_max_size=min(10, settings.db_pool_max))
    bank_app.add_middleware(tracing.TraceparentLog)  # the trace id the gateway sent, in the bank's log
    tracing.instrument(bank_app)
    uvicorn.run(bank_app, host=host, port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools", timeout_graceful_shutdown=5)


@app.command()
def worker() -> None:
    """Run the background loops: recovery, expiry, webhook delivery, key completion and purges."""
    from paygate.worker.main import run

    settings = get_settings()
    _refuse_weak_secrets(settings, GATEWAY_SECRETS)
    try:
        import uvloop  # as the API and the bank run (uvicorn's loop="uvloop"): less CPU per delivery, ADR 0019
    except ImportError:  # not built for this platform (uvicorn[standard] leaves it out on Windows)
        asyncio.run(run(settings))
    else:
        uvloop.run(run(settings))


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
    from paygate import serve_secrets, supervise

    settings = get_settings()
    home = Path(settings.home)
    embedded = None
    procs: list[supervise.Process] = []
    # SIGTERM stops everything in the `finally` below, as Ctrl-C does (API.md §13 v2)
    with supervise.sigterm_as_interrupt():
        try:
            # development unless told otherwise; with the generated secrets, production would start too
            env = {"PAYGATE_ENV": "development", **os.environ}
            try:
                generated, created = serve_secrets.load_or_create(home, os.environ)
            except ValueError as exc:  # a damaged secrets.json: say so, never replace the keys silently
                typer.echo(f"paygate: cannot read {home / serve_secrets.FILE_NAME}: {exc}", err=True)
                raise typer.Exit(2) from None
            env.update(generated)
            if created:
                typer.echo(f"generated {', '.join(created)} in {home / serve_secrets.FILE_NAME} (readable only by you)")
            url = settings.database_url
            if not url:
                from paygate.embedded import EmbeddedPostgres

                embedded = EmbeddedPostgres(home)
                typer.echo(f"starting embedded PostgreSQL under {settings.home} …")
                url = embedded.start()
            env["PAYGATE_DATABASE_URL"] = url
            env.setdefault("PAYGATE_BANK_URL", f"http://127.0.0.1:{bank_port}")
            env.setdefault("PAYGATE_PUBLIC_URL", f"http://127.0.0.1:{port}")
            os.environ.update(env)
            get_settings.cache_clear()
            settings = get_settings()
            applied = migrate_all(settings)
            if applied:
                typer.echo("migrations applied: " + ", ".join(applied))
            if asyncio.run(_merchant_count(url)) == 0:
                password = secrets.token_urlsafe(12)  # printed once; never a fixed, public password
                demo = asyncio.run(_create_merchant(settings, "Demo Store", DEMO_EMAIL, password))
                _announce_demo(home, demo, password, port)
            exe = [sys.executable, "-m", "paygate"]
            banks = _banks_to_serve(settings, bank_port)
            parts = [
                *(supervise.Process(f"bank {name}" if name != "bank" else "bank",
                                    [*exe, "bank", "--name", name, "--host", host, "--port", str(bport)], env,
                                    health_url=f"http://{host}:{bport}/healthz")
                  for name, host, bport in banks),
                supervise.Process("api", [*exe, "api", "--port", str(port), "--workers", str(workers)], env,
                                  health_url=f"http://127.0.0.1:{port}/healthz"),
                supervise.Process("worker", [*exe, "worker"], env),
            ]
            for part in parts:
                procs.append(part)  # start the next part only once this one answers: no first request races
                part.start(timeout=60)
            typer.echo(f"paygate is up: API http://127.0.0.1:{port}  docs http://127.0.0.1:{port}/docs  "
                       f"dashboard http://127.0.0.1:{port}/dashboard  "
                       + "  ".join(f"{name} http://{host}:{bport}" for name, host, bport in banks)
                       + "  (Ctrl-C stops)")
            exited = supervise.watch(procs)
            if exited is not None:
                typer.echo(f"paygate {exited.name} exited with {exited.popen.returncode if exited.popen else '?'}; "
                           "stopping the rest.", err=True)
                raise typer.Exit(1)
        except supervise.SuperviseError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            pass  # Ctrl-C or SIGTERM during start-up: stop what is running
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
            supervise.stop_all(reversed(procs), grace_s=15)  # the API first: it calls the bank
            if embedded is not None:
                embedded.stop()
            typer.echo("paygate stopped.")


def _banks_to_serve(settings: Settings, bank_port: int) -> list[tuple[str, str, int]]:
    """(name, host, port) of each simulator `serve` starts: one per PAYGATE_ACQUIRERS name, on its URL's
    port (API.md §13 v2), else the single `bank` on --bank-port."""
    from urllib.parse import urlsplit

    if not settings.acquirers:
        return [("bank", "127.0.0.1", bank_port)]
    out = []
    for name, url in settings.acquirer_urls.items():
        parts = urlsplit(url)
        out.append((name, parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)))
    return out


def _announce_demo(home: Path, demo: dict[str, str], password: str, port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    typer.echo("\nDemo merchant created (keys and password are shown once; a copy is in "
               f"{home / 'demo-merchant.json'}, readable only by you):")
    typer.echo(f"  merchant_id      {demo['merchant_id']}\n  secret_key       {demo['secret_key']}\n"
               f"  publishable_key  {demo['publishable_key']}\n"
               f"  dashboard        http://127.0.0.1:{port}/dashboard  login {DEMO_EMAIL} / {password}\n")
    path = home / "demo-merchant.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**demo, "email": DEMO_EMAIL, "password": password}, fh)


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
    failover: Annotated[bool, typer.Option(help="Instead: a primary and a synchronous standby of its own; "
                                                   "SIGKILL the primary mid-load, promote the standby, check.")]
    = False,
    kill_after: Annotated[float, typer.Option(help="--failover: kill the primary after this share of payments.")]
    = 0.4,
    promote_after: Annotated[float, typer.Option(help="--failover: seconds from the kill to the promotion.")] = 1.0,
    discrepancies: Annotated[bool, typer.Option(help="End with a batch that drops, adjusts and adds a line: "
                                                     "the reconciliation must find exactly those.")] = False,
    acquirers: Annotated[str, typer.Option(help="Acquirers (one simulated bank each), comma-separated; the "
                                                "first is SIGKILLed and restarted mid-run.")] = "alpha,beta",
) -> None:
    """Chaos drill: kill processes, break the bank, then prove nothing was charged twice or lost.

    With --failover: a PostgreSQL failover under load instead (tests/chaos/failover.py).
    The drill is a test harness (tests/chaos/): it runs from a source checkout only."""
    if failover:
        fo = _source_checkout_module("tests/chaos/failover.py")
        raise typer.Exit(fo.run(fo.FailoverConfig(payments=payments, clients=clients, kill_after=kill_after,
                                                  promote_after_s=promote_after, seed=seed)))
    drill_module = _source_checkout_module("tests/chaos/drill.py")
    cfg = drill_module.DrillConfig(server_url=server_url, payments=payments, clients=clients,
                                   kill_every_s=(kill_min, kill_max), failure_rate=failure_rate, lost_rate=lost_rate,
                                   latency_ms=latency_ms, seed=seed, keep_database=keep_database,
                                   discrepancies=discrepancies,
                                   acquirers=tuple(a.strip() for a in acquirers.split(",") if a.strip()))
    raise typer.Exit(drill_module.run(cfg))


def _source_checkout_module(relative: str) -> Any:
    """Load a module of the source checkout this paygate is installed from (`pip install -e .`)."""
    import importlib.util

    import paygate

    root = Path(paygate.__file__).resolve().parents[2]  # <checkout>/src/paygate/__init__.py
    path = root / relative
    if not (path.is_file() and (root / "src" / "paygate").is_dir()):
        typer.echo(f"paygate drill runs from a source checkout (it needs {relative}); this paygate is installed "
                   f"from {root}, which has none. Clone the repository and `pip install -e .` it.", err=True)
        raise typer.Exit(2)
    if str(root) not in sys.path:  # the drills import each other as tests.chaos.*
        sys.path.insert(0, str(root))
    name = "paygate_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from pydantic import ValidationError

    from paygate.domain.acquirers import AcquirerConfigError

    try:
        app()
    except AcquirerConfigError as exc:  # PAYGATE_ACQUIRERS unreadable: the message names the entry
        typer.echo(f"paygate: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:  # a PAYGATE_* variable with a value it cannot have: one line, exit 2
        first = exc.errors()[0]
        name = "PAYGATE_" + str(first["loc"][0]).upper() if first["loc"] else "configuration"
        typer.echo(f"paygate: {name}: {first['msg']}", err=True)
        sys.exit(2)
