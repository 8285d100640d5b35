"""Numbered plain-SQL migrations with a version table per schema (docs/decisions/0002).

A neutral module (psycopg and the standard library only): the gateway and the bank simulator both use it,
and neither imports the other for it (docs/decisions/0014)."""

from __future__ import annotations

from importlib import resources

import psycopg

_LOCK_ID = 0x7061_7967  # pg_advisory_lock id: one migrator at a time


def _files(package: str) -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files(package).iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def apply(conninfo: str, schema: str, package: str) -> list[str]:
    """Apply the package's pending `NNNN_name.sql` files inside `schema`; returns what was applied."""
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
                "(version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute(f'SELECT version FROM "{schema}".schema_migrations')}
            for version, name, sql in _files(package):
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    conn.execute(sql.encode())
                    conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES (%s, %s)',
                        (version, name),
                    )
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied


def all_names(package: str) -> list[str]:
    return [name for _, name, _ in _files(package)]
