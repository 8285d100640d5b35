"""The Edge middleware's exceptions to "bodies are JSON" are configuration given by create_app, not paths
it knows itself."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paygate.api.middleware import Edge


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"n": len(await request.body())})


def app(**config: tuple[str, ...]) -> Starlette:
    routes = [Route(path, echo, methods=["POST"]) for path in ("/forms/x", "/callback", "/callback/x", "/v1/x")]
    return Starlette(routes=routes, middleware=[Middleware(Edge, **config)])


async def statuses(target: Starlette) -> dict[str, int]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target), base_url="http://t") as c:
        return {path: (await c.post(path, content=b"a=1", headers={"content-type": "application/x-www-form-urlencoded"}
                                    )).status_code for path in ("/forms/x", "/callback", "/callback/x", "/v1/x")}


@pytest.mark.asyncio(loop_scope="session")
async def test_only_the_configured_paths_take_bodies_other_than_json() -> None:
    assert await statuses(app()) == {"/forms/x": 415, "/callback": 415, "/callback/x": 415, "/v1/x": 415}
    configured = app(form_prefixes=("/forms",), raw_body_paths=("/callback",))
    # A prefix covers what lies under it; a raw-body path is exact.
    assert await statuses(configured) == {"/forms/x": 200, "/callback": 200, "/callback/x": 415, "/v1/x": 415}
