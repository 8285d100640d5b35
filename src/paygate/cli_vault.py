"""`paygate vault …`: the card vault's maintenance (docs/customers-and-vault.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from paygate.config import get_settings, production_refusal

vault_app = typer.Typer(no_args_is_help=True, help="The card vault.")


@vault_app.command()
def rekey(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Records per transaction.")] = 100,
) -> None:
    """Re-encrypt every saved card under the current key (the first of PAYGATE_VAULT_KEY).

    Resumable and safe while the API serves: run it again after an interruption; once it reports 0
    remaining, the older keys can be removed from PAYGATE_VAULT_KEY."""
    from paygate.store.db import make_pool
    from paygate.vault import VaultError, keyring
    from paygate.vault.rekey import Progress
    from paygate.vault.rekey import rekey as run_rekey

    settings = get_settings()
    refusal = production_refusal(settings, ("vault_key",))  # re-encrypting under a weak key would be worse
    if refusal is not None:
        typer.echo(refusal, err=True)
        raise typer.Exit(2)
    if not settings.database_url:
        typer.echo("PAYGATE_DATABASE_URL is not set (or use `paygate serve`, which starts its own).", err=True)
        raise typer.Exit(2)
    ring = keyring(settings.vault_key)
    url = settings.database_url

    def report(p: Progress) -> None:
        typer.echo(f"rekey: batch {p.batches}: {p.resealed} re-encrypted so far")

    async def run() -> Progress:
        pool = make_pool(url, min_size=1, max_size=1)
        await pool.open()
        try:
            return await run_rekey(pool, ring, batch_size=batch_size, report=report)
        finally:
            await pool.close()

    typer.echo(f"rekey: current key id {ring.current.id}")
    try:
        done = asyncio.run(run())
    except VaultError as err:
        typer.echo(f"rekey: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"rekey: done: {done.resealed} re-encrypted, {done.remaining} remaining under older keys")
    if done.remaining:
        typer.echo("rekey: some records stayed locked by running requests; run it again", err=True)
        raise typer.Exit(1)
