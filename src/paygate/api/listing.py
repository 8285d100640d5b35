"""Query parameters shared by every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query

from paygate.domain import views
from paygate.errors import InvalidRequest


def parse_ts(value: str | None, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise InvalidRequest("parameter_invalid", f"{param} must be an RFC 3339 timestamp.", param=param) from None
    if parsed.tzinfo is None:
        raise InvalidRequest("parameter_invalid", f"{param} must carry a time zone (Z).", param=param)
    return parsed


@dataclass
class ListParams:
    limit: int
    starting_after: str | None
    created_gte: datetime | None
    created_lt: datetime | None


def list_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[str | None, Query(max_length=255)] = None,
    created_gte: str | None = None,
    created_lt: str | None = None,
) -> ListParams:
    return ListParams(limit, starting_after, parse_ts(created_gte, "created_gte"), parse_ts(created_lt, "created_lt"))


def page(rows: list[dict[str, Any]], limit: int, render: Any) -> dict[str, Any]:
    return views.listing([render(r) for r in rows[:limit]], len(rows) > limit)
