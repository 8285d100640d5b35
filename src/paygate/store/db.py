"""The connection pool and the few helpers every store module shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Conn = psycopg.AsyncConnection[DictRow]
Row = dict[str, Any]


async def _configure(conn: Conn) -> None:
    await conn.set_autocommit(True)


def make_pool(
    conninfo: str, *, min_size: int = 2, max_size: int = 16, name: str = "paygate"
) -> AsyncConnectionPool[Conn]:
    """A pool that opens lazily-tolerantly: if PostgreSQL is down the process still starts and recovers."""
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "prepare_threshold": 0, "connect_timeout": 3},
        connection_class=psycopg.AsyncConnection[DictRow],
        configure=_configure,
        open=False,
        name=name,
        timeout=3.0,  # a connection we cannot get within this is a 503, not a hung request
        max_lifetime=1800,
        reconnect_timeout=0,
    )


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
