"""Tiny builders for the dynamic parts of queries (column lists come only from code, never from input)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Json

from paygate.store.db import Write


def adapt(value: Any) -> Any:
    return Json(value) if isinstance(value, dict | list) else value


def together(writes: Sequence[Write]) -> Write:
    """Several writes as one statement: the first ones as data-modifying CTEs, the last as the main query.

    PostgreSQL runs every sub-statement to completion whether or not anything reads it, all under one
    snapshot, and checks foreign keys at the end of the whole statement (so a row may reference one inserted
    by another sub-statement). On an autocommit connection that statement is its own transaction: one round
    trip, one commit, all or nothing. The order of the sub-statements among themselves is unspecified: only
    writes that do not read each other's rows go together. A write that is itself a WITH cannot be nested."""
    assert writes, "nothing to write"
    assert not any(w.sql.lstrip().upper().startswith("WITH") for w in writes), "WITH inside WITH"
    *first, last = writes
    if not first:
        return last
    ctes = ", ".join(f"w{i} AS ({w.sql})" for i, w in enumerate(first))
    return Write(f"WITH {ctes} {last.sql}", tuple(p for w in writes for p in w.params))


def set_clause(fields: dict[str, Any], allowed: frozenset[str]) -> tuple[str, list[Any]]:
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    cols = ", ".join(f"{name} = %s" for name in fields)
    return cols, [adapt(v) for v in fields.values()]


class Page:
    """WHERE/ORDER/LIMIT for a newest-first, cursor-paginated list (IDs sort by creation time)."""

    def __init__(self, merchant_id: str) -> None:
        self.where: list[str] = ["merchant_id = %s"]
        self.params: list[Any] = [merchant_id]

    def eq(self, column: str, value: Any) -> Page:
        if value is not None:
            self.where.append(f"{column} = %s")
            self.params.append(value)
        return self

    def created(self, gte: datetime | None, lt: datetime | None) -> Page:
        if gte is not None:
            self.where.append("created_at >= %s")
            self.params.append(gte)
        if lt is not None:
            self.where.append("created_at < %s")
            self.params.append(lt)
        return self

    def sql(self, table: str, starting_after: str | None, limit: int) -> tuple[str, list[Any]]:
        where = list(self.where)
        params = list(self.params)
        if starting_after:
            where.append("id < %s")
            params.append(starting_after)
        params.append(limit + 1)
        return f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s", params
