"""`paygate reconcile` (API.md §18): the open reconciliation exceptions of every merchant, for operators."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any

import typer

from paygate.config import get_settings


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def reconcile(
    since: Annotated[str | None, typer.Option(help="Only exceptions created at or after this RFC 3339 time.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {\"exceptions\": [...]} as JSON.")] = False,
    resolve: Annotated[str | None, typer.Option(help="Resolve the open exception with this id.")] = None,
    note: Annotated[str | None, typer.Option(help="Why it is resolved (with --resolve).")] = None,
) -> None:
    """List the open reconciliation exceptions; exit 1 when any is open (0 when none). With --resolve ID
    [--note TEXT], mark one resolved first."""
    from paygate.services.gateway import utcnow
    from paygate.store import settlements
    from paygate.store.db import make_pool

    settings = get_settings()
    if not settings.database_url:
        typer.echo("PAYGATE_DATABASE_URL is not set.", err=True)
        raise typer.Exit(2)
    after: datetime | None = None
    if since is not None:
        try:
            after = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            typer.echo("--since must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z", err=True)
            raise typer.Exit(2) from None
        if after.tzinfo is None:
            typer.echo("--since must carry a time zone (Z)", err=True)
            raise typer.Exit(2)
    if note is not None and (len(note) > 1000 or any(ord(c) < 32 and c not in "\t\n\r" for c in note)):
        typer.echo("--note must be at most 1000 characters without control characters", err=True)
        raise typer.Exit(2)
    url = settings.database_url

    async def run() -> tuple[bool, list[dict[str, Any]]]:
        pool = make_pool(url, min_size=1, max_size=1)
        await pool.open()
        try:
            async with pool.connection() as conn:
                resolved = True
                if resolve is not None:
                    resolved = await settlements.resolve(conn, resolve, note, utcnow()) is not None
                rows = await settlements.open_exceptions(conn, after)
        finally:
            await pool.close()
        return resolved, [{"id": r["id"], "type": r["type"], "reference": r["reference"],
                           "merchant_id": r["merchant_id"], "settlement_id": r["settlement_id"],
                           "expected": r["expected"], "actual": r["actual"], "created_at": _iso(r["created_at"])}
                          for r in rows]

    resolved, exceptions = asyncio.run(run())
    if not resolved:
        typer.echo(f"reconcile: no open exception {resolve}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps({"exceptions": exceptions}))
    else:
        if resolve is not None:
            typer.echo(f"resolved {resolve}")
        for e in exceptions:
            typer.echo(f"{e['id']}  {e['type']:<24} {e['reference']:<32} merchant={e['merchant_id'] or '-'} "
                       f"settlement={e['settlement_id'] or '-'} expected={e['expected']} actual={e['actual']} "
                       f"at {e['created_at']}")
        typer.echo(f"{len(exceptions)} open exception(s)")
    raise typer.Exit(1 if exceptions else 0)
