"""How clients authenticate to the embedded PostgreSQL: a generated superuser password, SCRAM over TCP.

The server listens on 127.0.0.1 only and opens no Unix socket, so every client is a local process; with
`trust` any local user would be superuser (security audit 2026-12-01, finding 16). Instead, the first
start generates a random password into PAYGATE_HOME/postgres.password (0600, owned by whoever runs
paygate, not readable by the server's own account), initdb sets it for `postgres`, and pg_hba.conf
allows SCRAM-SHA-256 from 127.0.0.1 and nothing else. A data directory made by an older paygate with
`trust` is converted on its next start: the password is set over the still-trusting connection, then
pg_hba.conf is replaced and reloaded.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from paygate.embedded.accounts import Account

PASSWORD_FILE = "postgres.password"
HBA = """\
# Written by paygate (src/paygate/embedded/auth.py); rewritten if changed.
# TCP from this machine only, with the superuser password kept in PAYGATE_HOME/postgres.password.
# No Unix socket is opened (unix_socket_directories is empty), so no `local` line is needed.
host    all    all    127.0.0.1/32    scram-sha-256
"""


def password(home: Path) -> str:
    """The superuser password, generated (256 bits, URL-safe) on first use. Written to a temporary file
    and linked into place, so a reader never sees a half-written one and two first starts agree."""
    path = home / PASSWORD_FILE
    if not path.exists():
        tmp = home / f".{PASSWORD_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another start linked its own first: then theirs is the one
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def initdb_args(home: Path, account: Account, secret: str) -> list[str]:
    """initdb's options for a new cluster. Its --pwfile (initdb wants the data directory empty) lies in
    PAYGATE_HOME, 0600 and owned by the server's account, for as long as initdb runs: see finish_initdb."""
    pwfile = _pwfile(home)
    pwfile.unlink(missing_ok=True)
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    account.chown(pwfile)
    return ["--auth-host=scram-sha-256", "--auth-local=scram-sha-256", f"--pwfile={pwfile}"]


def finish_initdb(home: Path, scratch: Path, account: Account) -> None:
    """After initdb (or its failure): no second copy of the password, and our pg_hba.conf."""
    _pwfile(home).unlink(missing_ok=True)
    if (scratch / "PG_VERSION").exists():
        write_hba(scratch, account)


def _pwfile(home: Path) -> Path:
    return home / f".initdb-pwfile-{os.getpid()}"


def write_hba(pgdata: Path, account: Account) -> None:
    path = pgdata / "pg_hba.conf"
    tmp = path.with_name("pg_hba.conf.tmp")
    tmp.write_text(HBA)
    tmp.chmod(0o600)
    account.chown(tmp)
    tmp.replace(path)


def hba_is_ours(pgdata: Path) -> bool:
    try:
        return (pgdata / "pg_hba.conf").read_text() == HBA
    except FileNotFoundError:
        return False


def convert_from_trust(pgdata: Path, account: Account, secret: str, connect: Callable[[], psycopg.Connection]) -> None:
    """An older data directory (trust): set the password while trust still lets us in, then require it."""
    with connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(secret)))
        write_hba(pgdata, account)
        conn.execute("SELECT pg_reload_conf()")
