"""`paygate merchant …`: create merchants and roll their API keys (API.md §13, §19).

Keys are printed once, here, and never again (only hashes are stored). A password never has to be in
argv, where other local users can read it (ps, /proc): without `--password` it is prompted for (hidden,
typed twice) on a terminal, or read as one line from stdin otherwise (`… < file`, a pipe, a secret store).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer

from paygate.config import get_settings
from paygate.domain import credentials

merchant_app = typer.Typer(no_args_is_help=True, help="Manage merchants.")

T = TypeVar("T")


def _with_pool(use: Callable[..., Awaitable[T]]) -> T:
    """Run one use case over a one-connection pool (a command is one short job)."""
    from paygate.errors import PaygateError
    from paygate.logs import configure_logging
    from paygate.store.db import make_pool

    settings = get_settings()
    configure_logging(settings.log_level)  # to stderr: stdout carries the keys (and only them, with --json)
    url = settings.database_url
    if not url:
        typer.echo("PAYGATE_DATABASE_URL is not set (or use `paygate serve`, which starts its own).", err=True)
        raise typer.Exit(2)

    async def run() -> T:
        pool = make_pool(url, min_size=1, max_size=1)
        await pool.open()
        try:
            return await use(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(run())
    except PaygateError as err:
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(1) from None


def _read_password(given: str | None) -> str:
    if given is not None:
        return given
    if sys.stdin.isatty():
        typed: str = typer.prompt("Dashboard password", hide_input=True, confirmation_prompt=True)
        return typed
    return sys.stdin.readline().rstrip("\r\n")  # only the line end: spaces belong to the password


def _print_keys(keys: dict[str, str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(keys))
    else:
        typer.echo(f"merchant_id:     {keys['merchant_id']}\nsecret_key:      {keys['secret_key']}\n"
                   f"publishable_key: {keys['publishable_key']}")


@merchant_app.command("create")
def merchant_create(
    name: Annotated[str, typer.Option(help="Display name.")],
    email: Annotated[str, typer.Option(help="Dashboard login (unique, whatever its case).")],
    password: Annotated[str | None, typer.Option(
        help=f"Dashboard password, at least {credentials.PASSWORD_MIN_CHARS} characters. Better left out: "
             "it is then prompted for, or read from stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a merchant; prints its id and keys (shown only now)."""
    from paygate.services import merchants

    secret = _read_password(password)
    problem = credentials.password_problem(secret)  # before connecting: a typo costs nothing
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1)
    made = _with_pool(lambda pool: merchants.create(pool, name=name, email=email, password=secret))
    _print_keys({"merchant_id": made.merchant_id, "secret_key": made.secret_key,
                 "publishable_key": made.publishable_key}, as_json)


@merchant_app.command("roll-keys")
def merchant_roll_keys(
    merchant: Annotated[str, typer.Option(help="The merchant's id (mer_…).")],
    grace: Annotated[int, typer.Option(
        help="Seconds the old keys keep working (0: they stop at once; at most "
             f"{credentials.GRACE_MAX_S}).")] = credentials.DEFAULT_GRACE_S,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the shape of `merchant create --json`).")]
    = False,
) -> None:
    """Replace a merchant's secret and publishable keys; prints the new ones (shown only now)."""
    from paygate.services import merchants

    rolled = _with_pool(lambda pool: merchants.roll_keys(pool, merchant, grace))
    keys = rolled.keys
    _print_keys({"merchant_id": keys.merchant_id, "secret_key": keys.secret_key,
                 "publishable_key": keys.publishable_key}, as_json)
    if rolled.old_keys_expire_at is not None:
        ends = rolled.old_keys_expire_at.astimezone(UTC)
        typer.echo("the previous keys no longer work" if ends <= datetime.now(UTC) else
                   f"the previous keys stop working at {ends:%Y-%m-%dT%H:%M:%SZ}", err=True)
