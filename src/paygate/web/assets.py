"""Static files and the JS SDK, served from the package (no CDN: paygate runs without internet).

An explicit allow-list rather than a directory mount: nothing but these files can ever be served, and
each gets the right content type.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from paygate.errors import NotFound

router = APIRouter(include_in_schema=False)

_JS = "application/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
FILES = {
    "paygate.js": _JS,
    "checkout.js": _JS,
    "dashboard.js": _JS,
    "checkout.css": _CSS,
    "dashboard.css": _CSS,
}


@cache
def _read(name: str) -> bytes:
    return (resources.files("paygate.web") / "static" / name).read_bytes()


def _serve(name: str, max_age: int) -> Response:
    return Response(_read(name), media_type=FILES[name], headers={
        "Cache-Control": f"public, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
        # merchants may load the SDK from their own pages, and check it with Subresource Integrity
        "Access-Control-Allow-Origin": "*",
    })


@router.get("/sdk/paygate.js")
async def sdk() -> Response:
    """The embeddable SDK (API.md §11); short cache so that a fix reaches merchants' pages soon."""
    return _serve("paygate.js", 300)


@router.get("/checkout.js")
async def sdk_drop_in() -> Response:
    """The same SDK at the address seed 001's and 004's merchants load; it defines `PaymentGateway` too."""
    return _serve("paygate.js", 300)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in FILES:
        raise NotFound("file", name)
    return _serve(name, 300)
