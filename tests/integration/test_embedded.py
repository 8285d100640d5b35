"""The embedded PostgreSQL of `paygate serve`: first start, restart with data kept, crash recovery, and
password authentication (no trust for local users)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from paygate.embedded import EmbeddedPostgres, EmbeddedPostgresError


@pytest.fixture
def home() -> Iterator[Path]:
    """Not pytest's tmp_path: another pytest session may chmod /tmp/pytest-of-<user> back to 0700 at any
    moment, and the server (not root) must keep reaching its data directory."""
    base = Path(tempfile.mkdtemp(prefix="paygate-test-embedded-"))
    yield base / "home"
    shutil.rmtree(base, ignore_errors=True)


def _postmaster_pid(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().split()[0])


def test_starts_initialises_and_keeps_data_across_restarts(home: Path) -> None:
    pg = EmbeddedPostgres(home)
    url = pg.start()
    try:
        assert url.startswith("postgresql://") and url.endswith("/paygate")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
        pg.stop()
        pg.stop()  # idempotent

        with EmbeddedPostgres(home) as again, psycopg.connect(again.url()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        pg.stop()
    assert not (home / "pgdata" / "postmaster.pid").exists()


def test_recovers_after_the_server_was_killed(home: Path) -> None:
    pg = EmbeddedPostgres(home)
    url = pg.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t AS SELECT 7 AS v")
        with psycopg.connect(url):  # its backend outlives the postmaster for a while
            os.kill(_postmaster_pid(home), signal.SIGKILL)
            url = EmbeddedPostgres(home).start()  # at once: stale postmaster.pid, leftover backends
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM t").fetchone() == (7,)

        adopted = EmbeddedPostgres(home)  # a second handle adopts the running server
        assert adopted.start() == url
        adopted.stop()
        assert not (home / "pgdata" / "postmaster.pid").exists()
    finally:
        pg.stop()


def test_explicit_port(home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with EmbeddedPostgres(home, port=port) as pg:
        assert pg.port == port
        with psycopg.connect(pg.admin_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)


def _refused_without_password(port: int) -> bool:
    for url in (f"postgresql://postgres@127.0.0.1:{port}/postgres",
                f"postgresql://postgres:wrong@127.0.0.1:{port}/postgres"):
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            if "password" not in str(exc):
                return False
        else:
            return False
    return True


def test_only_the_generated_password_lets_a_client_in(home: Path) -> None:
    with EmbeddedPostgres(home) as pg:
        secret = (home / "postgres.password").read_text().strip()
        assert len(secret) >= 40 and secret in pg.url()
        assert stat.S_IMODE((home / "postgres.password").stat().st_mode) == 0o600
        assert (home / "postgres.password").stat().st_uid == os.geteuid()  # not the server's account
        assert _refused_without_password(pg.port)
        with psycopg.connect(pg.url()) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        hba = (home / "pgdata" / "pg_hba.conf").read_text()
        assert "trust" not in hba and "host    all    all    127.0.0.1/32    scram-sha-256" in hba
        assert not list(home.glob(".initdb-pwfile-*"))  # initdb's copy of the password is gone
    (home / "postgres.password").unlink()
    with pytest.raises(EmbeddedPostgresError, match=r"postgres\.password is missing"):
        EmbeddedPostgres(home).start()
    assert not (home / "postgres.password").exists()  # no new password was made up for the old data


def test_a_data_directory_that_trusted_everyone_is_converted(home: Path) -> None:
    """As an older paygate left it: trust for TCP, no password set, no password file."""
    with EmbeddedPostgres(home) as pg, psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 1 AS v")
        conn.execute("ALTER ROLE postgres PASSWORD NULL")
        (home / "pgdata" / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
        conn.execute("SELECT pg_reload_conf()")
    (home / "postgres.password").unlink()

    with EmbeddedPostgres(home) as again:
        assert (home / "postgres.password").exists()
        assert _refused_without_password(again.port)
        with psycopg.connect(again.admin_url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (1,)
