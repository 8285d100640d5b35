"""The control-character rule (domain/text.py) for path and query parameters, for every route at once.

Installed as an application-wide dependency (api/app.py), so it runs for the API, the hosted checkout and
the dashboard alike, before authentication and before any query: a `%00` in an id used to reach
PostgreSQL, which refuses NUL in text, and come back as a 500 (security audit, finding 5). A dependency
rather than the edge middleware because only after routing are the path parameters known by name, and
the 400 names the one at fault. Paths and query strings carry no free text, so tab, LF and CR are
refused there too.
"""

from __future__ import annotations

from fastapi import Request

from paygate.domain import text
from paygate.errors import InvalidRequest


def _refuse(name: str, why: str) -> InvalidRequest:
    param = name if text.acceptable(name) else None
    return InvalidRequest("parameter_invalid", f"{param or 'A parameter name'} {why}.", param=param)


async def refuse_control_characters(request: Request) -> None:
    for name, value in request.path_params.items():
        why = text.problem(value) if isinstance(value, str) else None
        if why is not None:
            raise _refuse(name, why)
    for name, value in request.query_params.multi_items():
        why = text.problem(name) or text.problem(value)
        if why is not None:
            raise _refuse(name, why)
