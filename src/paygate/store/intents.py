"""A phase's intent written by one statement: its rows' inserts (and the key's checkpoint) as one statement
on an autocommit connection — one round trip, one implicit transaction, all or nothing (decision 0025).

Each piece is its store module's own `Write` (payments.insert_write, bank_ops.insert_write,
idempotency.insert_write / checkpoint_write): the SQL is defined once, whether it is sent alone in a
pipelined transaction or here with the others as data-modifying CTEs (store/_sql.py `together`).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.pq import TransactionStatus

from paygate.store._sql import together
from paygate.store.db import Conn, Write, run


async def commit(conn: Conn, writes: Sequence[Write]) -> None:
    """Write them all in one statement, its own transaction. Errors (a duplicate idempotency key on its
    primary key, a foreign key, a timeout) are raised by this call and nothing of it is stored."""
    # Inside a transaction the statement would only be queued into it, and commit with it, not by itself.
    assert conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE, "its own transaction"
    await run(conn, together(writes))
