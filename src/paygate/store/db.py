"""The connection pool and the few helpers every store module shares."""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from paygate.config import get_settings

Conn = psycopg.AsyncConnection[DictRow]
Row = dict[str, Any]

log = structlog.get_logger("paygate.db")

# json/jsonb parameters (`Json(...)`, store/_sql.py `adapt`) and columns through orjson rather than the stdlib:
# every payment row read carries several (status_history, payment_method, attempts, references) and every
# payment write sends some. Process-wide (psycopg's global adapters), once at import. What goes in is what
# the API let in — str keys, str/int/bool/None values, ints within 64 bits (amounts <= MAX_AMOUNT), no NaN —
# where both encoders agree on the value; the text of a `json` column is compact UTF-8 now instead of
# ASCII-escaped with spaces, the same JSON value (docs/decisions/0022).
set_json_dumps(orjson.dumps)
set_json_loads(orjson.loads)

# Every connection of ours. The server's statement and lock timeouts bound a query only while the server
# is there; a primary that vanished without closing its sockets (a host lost, a partition: no RST) would
# leave a request or a LISTEN waiting on TCP for many minutes. So: keepalive probes on an idle socket
# (dead after 5 + 3 x 2 s) and tcp_user_timeout for data sent but never acknowledged (10 s). The error
# then fails the request (503) or restarts the listener, and the next connection finds the new primary
# (a multi-host PAYGATE_DATABASE_URL with target_session_attrs=read-write: docs/deploy.md).
SOCKET_KWARGS: dict[str, Any] = {"connect_timeout": 3, "keepalives": 1, "keepalives_idle": 5,
                                 "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": 10_000}


async def listen_connection(conninfo: str) -> psycopg.AsyncConnection[Any]:
    """A connection of its own for LISTEN (autocommit, outside any pool: it is held for ever). Its
    callers reconnect in a loop when it fails, and re-LISTEN: after a failover, on the new primary."""
    return await psycopg.AsyncConnection.connect(conninfo, autocommit=True, **SOCKET_KWARGS)


async def _configure(conn: Conn) -> None:
    await conn.set_autocommit(True)


CHECK_AFTER_IDLE_S = 1.0
_last_handed_out: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()


async def _check(conn: Conn) -> None:
    """Before a connection is handed out: one empty round trip, unless it was handed out less than a
    second ago. A connection that died with a failover or an idle reap has then been idle, and is
    replaced instead of failing a request; a busy pool (the hot path, ADR 0008) pays nothing."""
    now = time.monotonic()
    last = _last_handed_out.get(conn)
    _last_handed_out[conn] = now
    if last is None or now - last >= CHECK_AFTER_IDLE_S:
        await AsyncConnectionPool.check_connection(conn)


def session_options(conninfo: str, *, statement_timeout_ms: int, lock_timeout_ms: int) -> str:
    """The libpq `options` every pooled session starts with: the conninfo's own (or PGOPTIONS), then ours.

    Sent in the startup packet, so they cost no round trip and hold for the whole session. A statement
    that runs longer than `statement_timeout_ms`, or waits longer than `lock_timeout_ms` for a row or
    advisory lock, is cancelled by the server (QueryCanceled / LockNotAvailable, answered 503): no
    request waits on the database for ever (API.md §19). Only pools get them: migrations, the LISTEN
    connection and the drill's checks connect on their own and may legitimately wait longer. 0 turns
    either off, as in PostgreSQL."""
    # an `options` keyword replaces libpq's PGOPTIONS and the conninfo's own: keep theirs, then ours
    own = str(conninfo_to_dict(conninfo).get("options") or os.environ.get("PGOPTIONS", ""))
    ours = f"-c statement_timeout={int(statement_timeout_ms)} -c lock_timeout={int(lock_timeout_ms)}"
    return f"{own} {ours}".strip()


def make_pool(
    conninfo: str, *, min_size: int = 2, max_size: int = 16, name: str = "paygate", timeout: float = 3.0,
    statement_timeout_ms: int | None = None, lock_timeout_ms: int | None = None,
) -> AsyncConnectionPool[Conn]:
    """A pool that opens lazily-tolerantly: if PostgreSQL is down the process still starts and recovers.

    `timeout` is how long a request waits for a free connection (then 503, not a hung request). The
    session timeouts default to PAYGATE_DB_STATEMENT_TIMEOUT_MS and PAYGATE_DB_LOCK_TIMEOUT_MS. A
    connection idle for a second or more is checked before it is handed out (`_check`)."""
    settings = get_settings()
    options = session_options(
        conninfo,
        statement_timeout_ms=settings.db_statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms,
        lock_timeout_ms=settings.db_lock_timeout_ms if lock_timeout_ms is None else lock_timeout_ms,
    )
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "prepare_threshold": 0, "options": options, **SOCKET_KWARGS},
        connection_class=psycopg.AsyncConnection[DictRow],
        configure=_configure,
        check=_check,
        open=False,
        name=name,
        timeout=timeout,
        max_lifetime=1800,
        # a connection that cannot be made is given up after a second try; the pool grows again on
        # demand, so once a new primary answers, the next request's connection is made there
        reconnect_timeout=0,
        reconnect_failed=_reconnect_failed,
    )


def _reconnect_failed(pool: AsyncConnectionPool[Any]) -> None:
    log.warning("database_reconnect_failed", pool=pool.name)


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool[Conn]) -> AsyncIterator[Conn]:
    """One connection, one transaction: the unit of atomicity of every phase."""
    async with pool.connection() as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def pipelined(pool: AsyncConnectionPool[Conn]) -> AsyncIterator[Conn]:
    """A transaction in pipeline mode: statements whose results nobody reads are sent together with the
    COMMIT, so a phase costs a round trip per result it reads rather than per statement. Errors of the
    queued statements surface at the commit (or the next read), and roll the whole transaction back."""
    async with pool.connection() as conn, conn.pipeline(), conn.transaction():
        yield conn


async def fetch_one(conn: Conn, sql: str, params: Any = None) -> Row | None:
    cur = await conn.execute(sql.encode(), params)
    return await cur.fetchone()


async def fetch_all(conn: Conn, sql: str, params: Any = None) -> list[Row]:
    cur = await conn.execute(sql.encode(), params)
    return await cur.fetchall()


@dataclass(frozen=True)
class Write:
    """One data-modifying statement, built but not sent: its store module's only copy of that SQL. The module
    sends it alone (`run`), or a phase sends several as one statement (store/_sql.py `together`)."""

    sql: str
    params: tuple[Any, ...]


async def run(conn: Conn, write: Write) -> None:
    """Send one write (queued, in a pipeline: its result is not read)."""
    await conn.execute(write.sql.encode(), write.params)
