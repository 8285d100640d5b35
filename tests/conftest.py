"""Shared fixtures: one PostgreSQL server per session, a migrated template, a fresh database per test.

The server is the one at 127.0.0.1:5432 (user postgres) when it answers, else an embedded one started
for the session; `PAYGATE_TEST_SERVER_URL` names another (an admin conninfo URL), or `embedded` to
use an embedded server even when 5432 answers (as on a fresh machine). Each test database
is a copy of a template migrated once per migration set (`CREATE DATABASE ... TEMPLATE`, as
procrastinate does): fast, isolated, real. We only ever create and drop our own `paygate_t_*` and
`paygate_tpl_*` databases; the server itself is never stopped or reconfigured.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import pytest
from psycopg import sql

from paygate.embedded import EmbeddedPostgres

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# (schema, package) in the order `paygate migrate` applies them
MIGRATIONS = (("public", "paygate.store.migrations"), ("bank", "paygate.simbank.migrations"))
_TEMPLATE_LOCK = 0x7067_7470_6C00  # pg_advisory_lock key: one template builder at a time
_TEMPLATE_IDLE_S = 3600
_TEST_DB = re.compile(r"^paygate_t_(\d+)_[0-9a-f]+$")


class MakeDatabase(Protocol):
    def __call__(self, *, migrated: bool = True) -> str: ...


def with_dbname(url: str, dbname: str) -> str:
    """The same server URL, pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Admin conninfo (superuser, database `postgres`) of the server the tests may create databases on."""
    explicit = os.environ.get("PAYGATE_TEST_SERVER_URL", "")
    if explicit and explicit != "embedded":
        yield explicit
        return
    if not explicit and _answers(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    home = Path(tempfile.mkdtemp(prefix="paygate-test-pg-"))
    # durability is pointless for throwaway test data; these make CREATE DATABASE and commits cheap
    server = EmbeddedPostgres(home, settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
    try:
        server.start()
        yield server.admin_url
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _migration_sets() -> list[tuple[str, str, Path]]:
    """(schema, package, directory) of each migration package that exists yet; others are skipped."""
    found = []
    for schema, package in MIGRATIONS:
        try:
            spec = importlib.util.find_spec(package)
        except ImportError:  # a parent package that does not exist yet: no migrations from it
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        found.append((schema, package, Path(next(iter(spec.submodule_search_locations)))))
    return found


def _template_name(sets: list[tuple[str, str, Path]]) -> str:
    digest = hashlib.sha256()
    for schema, package, directory in sets:
        for path in sorted(directory.glob("*.sql")):
            digest.update(f"{schema}\0{package}\0{path.name}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return f"paygate_tpl_{digest.hexdigest()[:12]}"


def _database_exists(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def _drop(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _is_local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1", None)


def _sweep_abandoned(conn: psycopg.Connection[tuple[object, ...]], url: str) -> None:
    """Drop test databases whose pytest process is gone (killed sessions leave them behind)."""
    if not _is_local(url):
        return
    for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'paygate\\_t\\_%'"):
        match = _TEST_DB.match(str(name))
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if not alive:
            _drop(conn, str(name))


def _mark_used(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    comment = f"paygate test template, last used {int(time.time())}"
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))


def _drop_unused_templates(conn: psycopg.Connection[tuple[object, ...]], keep: str) -> None:
    """Templates of older migration sets that no session has used for an hour (sessions are shorter)."""
    rows = conn.execute(
        "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), ''),"
        " (pg_stat_file('base/' || oid || '/PG_VERSION', true)).modification"
        " FROM pg_database WHERE datname LIKE %s AND datname <> %s",
        ("paygate\\_tpl\\_%", keep),
    ).fetchall()
    for name, comment, created in rows:
        used = re.search(r"last used (\d+)", str(comment))
        if used is not None:
            last = float(used.group(1))
        elif isinstance(created, datetime):  # a template from before we marked use: its creation
            last = created.timestamp()
        else:
            continue
        if time.time() - last < _TEMPLATE_IDLE_S:
            continue
        with contextlib.suppress(psycopg.Error):  # still being copied: next time
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(str(name))))
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(str(name))))


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> str:
    """Name of a database with every migration applied, built once per set of migration files."""
    from paygate.store import migrate

    sets = _migration_sets()
    name = _template_name(sets)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            _sweep_abandoned(conn, pg_server_url)
            _drop_unused_templates(conn, keep=name)
            if _database_exists(conn, name):
                _mark_used(conn, name)
                return name
            # build under another name and rename when complete: a half-built template never
            # carries the real name, whatever kills this session
            building = f"{name}_build"
            _drop(conn, building)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
            try:
                for schema, package, _ in sets:
                    migrate.apply(with_dbname(pg_server_url, building), schema, package)
            except BaseException:
                _drop(conn, building)
                raise
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(building), sql.Identifier(name))
            )
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(name)))
            _mark_used(conn, name)
            return name
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))


@contextlib.contextmanager
def _database_factory(pg_server_url: str, template_database: str) -> Iterator[MakeDatabase]:
    created: list[str] = []

    def make(*, migrated: bool = True) -> str:
        name = f"paygate_t_{os.getpid()}_{secrets.token_hex(4)}"
        template = template_database if migrated else "template0"
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        created.append(name)
        return with_dbname(pg_server_url, name)

    try:
        yield make
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            for name in created:
                with contextlib.suppress(psycopg.Error):
                    _drop(conn, name)


@pytest.fixture
def make_database(pg_server_url: str, template_database: str) -> Iterator[MakeDatabase]:
    """Factory: a new database (migrated by default, else empty) per call, all dropped afterwards."""
    with _database_factory(pg_server_url, template_database) as make:
        yield make


@pytest.fixture(scope="module")
def make_module_database(pg_server_url: str, template_database: str) -> Iterator[MakeDatabase]:
    """The same, for fixtures shared by a whole test module."""
    with _database_factory(pg_server_url, template_database) as make:
        yield make


@pytest.fixture
def database_url(make_database: MakeDatabase) -> str:
    """Conninfo URL of a fresh, migrated database of this test's own."""
    return make_database()
