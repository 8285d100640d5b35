"""The Edge middleware: request ids on every answer (even a bug's 500), body limits, media types."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paygate.api.middleware import Edge


async def boom(_: Request) -> JSONResponse:
    raise RuntimeError("secret internals")


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"n": len(await request.body())})


# as in paygate.api.app: Edge sits inside Starlette's server-error middleware
app = Starlette(routes=[Route("/boom", boom), Route("/echo", echo, methods=["POST"])], middleware=[Middleware(Edge)])


@pytest.mark.asyncio(loop_scope="session")
async def test_edge() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/boom")
        assert r.status_code == 500 and r.headers["request-id"].startswith("req_")
        assert r.json()["error"]["type"] == "api_error" and "secret internals" not in r.text
        ok = await c.post("/echo", json={"a": 1})
        assert ok.status_code == 200 and ok.headers["request-id"] != r.headers["request-id"]
        assert (await c.post("/echo", content=b"a=1", headers={"content-type": "text/plain"})).status_code == 415
        big = await c.post("/echo", content=b"x" * 1_048_577, headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
