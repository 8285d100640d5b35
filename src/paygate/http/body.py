"""Reading a JSON request body (the middleware has already refused other media types and oversized bodies)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from paygate.errors import InvalidRequest


async def json_body(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("parameter_invalid", "The request body is not valid JSON.") from None
