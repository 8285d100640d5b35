"""The embedded PostgreSQL of `paygate serve`: first start, restart with data kept, crash recovery."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import psycopg

from paygate.embedded import EmbeddedPostgres


def _postmaster_pid(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().split()[0])


def test_starts_initialises_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    home = tmp_path / "home"
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

        with EmbeddedPostgres(home) as again:
            assert again.url() == url  # the remembered port is reused when free
            with psycopg.connect(again.url()) as conn:
                assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        pg.stop()
    assert not (home / "pgdata" / "postmaster.pid").exists()


def test_recovers_after_the_server_was_killed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pg = EmbeddedPostgres(home)
    url = pg.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t AS SELECT 7 AS v")
        open_session = psycopg.connect(url)  # its backend outlives the postmaster for a while
        os.kill(_postmaster_pid(home), signal.SIGKILL)

        url = EmbeddedPostgres(home).start()  # stale postmaster.pid, leftover backends
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM t").fetchone() == (7,)
        open_session.close()

        adopted = EmbeddedPostgres(home)  # a second handle adopts the running server
        assert adopted.start() == url
        adopted.stop()
        assert not (home / "pgdata" / "postmaster.pid").exists()
    finally:
        pg.stop()


def test_explicit_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with EmbeddedPostgres(tmp_path / "home", port=port) as pg:
        assert pg.port == port
        with psycopg.connect(pg.admin_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
