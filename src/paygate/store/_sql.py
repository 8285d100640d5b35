"""Tiny builders for the dynamic parts of queries (column lists come only from code, never from input)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Json


def adapt(value: Any) -> Any:
    return Json(value) if isinstance(value, dict | list) else value


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
