"""Run a `paygate` command with its database traffic counted: `python bench/sqlcount.py OUT.json ARGS...`.

PostgreSQL here has no pg_stat_statements (it must be preloaded, and the bench never reconfigures the
server), so the harness counts on the client side instead, in a separate pass: this wrapper patches psycopg
before paygate imports it, then runs `paygate ARGS` in the same process (so `api` needs `--workers 1`).
It counts:

- `round_trips`: every wait for the server's answer — each statement outside a pipeline, each BEGIN and
  COMMIT, each separate PREPARE, each pipeline sync;
- `stmt:<VERB> <table>`: statements as sent by paygate (executemany counts one per row);
- `txn:<COMMAND>`: BEGIN / COMMIT / ROLLBACK and other internal commands;
- `implicit_txn`: statements run on an autocommit connection outside BEGIN (each is its own commit);
- `prepare`: statements prepared on the server (psycopg prepares on first use with prepare_threshold=0).

Counts made outside an HTTP request's task (background loops: the bank's callback outbox, all of the
worker, the pools' upkeep) are kept apart under a `bg:` prefix. Counters are written to OUT.json
(atomically) every 100 ms, so the harness reads deltas around a batch of requests. Used only by the
bench: the measured scenarios always run unpatched code.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

COUNTS: collections.Counter[str] = collections.Counter()
_LOCK = threading.Lock()
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+([a-z_][a-z0-9_.]*)", re.IGNORECASE)


def _in_request() -> bool:
    """Is the current asyncio task serving an HTTP request (uvicorn's per-request task), rather than a
    background loop (the bank's callback outbox, the worker's loops, the pool's maintenance)?"""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    coro = task.get_coro() if task is not None else None
    return "run_asgi" in getattr(coro, "__qualname__", "")


def _count(name: str, n: int = 1) -> None:
    key = name if _in_request() else f"bg:{name}"
    with _LOCK:
        COUNTS[key] += n


def classify(query: Any) -> str:
    """`VERB table` for a statement, e.g. `INSERT payments`, `WITH events` (its first target table)."""
    text = query.decode() if isinstance(query, bytes) else str(query)
    text = text.strip()
    verb = text.split(None, 1)[0].upper() if text else "?"
    match = _TABLE.search(text)
    return f"{verb} {match.group(1)}" if match else verb


def install() -> None:
    import psycopg
    import psycopg._connection_base as connection_base
    import psycopg._cursor_base as cursor_base
    import psycopg._pipeline_base as pipeline_base
    import psycopg.generators as generators

    def counting(fn: Callable[..., Generator[Any, Any, Any]], name: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            _count(name)
            return fn(*args, **kwargs)

        return wrapper

    # module globals that psycopg's code looks up at call time (private: hence the dict access)
    for module, name in ((cursor_base, "execute"), (generators, "execute"), (pipeline_base, "pipeline_communicate")):
        module.__dict__[name] = counting(module.__dict__[name], "round_trips")

    execute, executemany = psycopg.AsyncCursor.execute, psycopg.AsyncCursor.executemany

    idle = psycopg.pq.TransactionStatus.IDLE

    async def counted_execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        _count("stmt:" + classify(query))
        if self.connection.autocommit and self.connection.info.transaction_status == idle:
            _count("implicit_txn")  # a statement outside BEGIN..COMMIT: its own transaction
        return await execute(self, query, params, **kwargs)

    async def counted_executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        params_seq = list(params_seq)
        _count("stmt:" + classify(query), len(params_seq))
        _count("executemany")
        return await executemany(self, query, params_seq, **kwargs)

    # method-assign below: replacing psycopg's methods with the counting wrappers is the point of this module
    psycopg.AsyncCursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.AsyncCursor.executemany = counted_executemany  # type: ignore[method-assign]

    exec_command = connection_base.BaseConnection._exec_command

    def counted_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        text = command if isinstance(command, bytes | str) else command.as_string(self)
        _count("txn:" + classify(text))
        return exec_command(self, command, *args, **kwargs)

    connection_base.BaseConnection._exec_command = counted_command  # type: ignore[method-assign]

    send_prepare = cursor_base.BaseCursor._send_prepare

    def counted_prepare(self: Any, *args: Any, **kwargs: Any) -> None:
        _count("prepare")
        send_prepare(self, *args, **kwargs)

    cursor_base.BaseCursor._send_prepare = counted_prepare  # type: ignore[method-assign]


def _dump_forever(out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    while True:
        with _LOCK:
            snapshot = dict(COUNTS)
        tmp.write_text(json.dumps({"pid": os.getpid(), "at": time.time(), "counts": snapshot}))
        os.replace(tmp, out)
        time.sleep(0.1)


def main() -> None:
    out = Path(sys.argv[1])
    install()
    threading.Thread(target=_dump_forever, args=(out,), daemon=True, name="sqlcount").start()
    from paygate.cli import main as paygate_main

    sys.argv = ["paygate", *sys.argv[2:]]
    paygate_main()


if __name__ == "__main__":
    main()
