"""The embedded PostgreSQL of `paygate serve`: first start, restart with data kept, crash recovery."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from paygate.embedded import EmbeddedPostgres


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
