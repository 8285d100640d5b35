"""JSON responses rendered once with orjson; error bodies mapped mechanically from PaygateError."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from paygate.errors import PaygateError


def json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def raw(body: bytes, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error(err: PaygateError) -> Response:
    return json(err.body(), err.status, err.headers())
