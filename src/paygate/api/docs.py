"""`GET /docs` (API.md §10): Swagger UI over /openapi.json, served from this process.

FastAPI's default page loads Swagger UI from a CDN without Subresource Integrity, on the dashboard's origin:
whoever controls that CDN (or the path to it) runs script next to merchants' sessions. Here the files come
from the `swagger-ui-bundle-v2` wheel (Swagger UI's own dist folder; the lock file pins its hash), and the
page starts it from a file rather than an inline script, so its CSP allows scripts of this origin only.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from paygate.errors import NotFound

router = APIRouter(include_in_schema=False)

# name → media type: the only files served (not the bundle's sample index.html, maps or petstore config)
_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_START = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                               presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
});
"""
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paygate API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/start.js"></script></body></html>
"""
# Swagger UI sets style attributes and shows inline SVG/data: images; scripts and connections stay 'self'.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


@lru_cache(maxsize=len(_ASSETS))
def _asset(name: str) -> bytes:
    from swagger_ui_bundle import swagger_ui_path  # imported on first use: /docs is rarely visited

    body: bytes = (swagger_ui_path / name).read_bytes()
    return body


@router.get("/docs")
async def docs() -> Response:
    return HTMLResponse(_PAGE, headers=_HEADERS)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    if name == "start.js":
        body, media = _START, "application/javascript"
    elif name in _ASSETS:
        body, media = _asset(name), _ASSETS[name]
    else:
        raise NotFound("route")
    return Response(body, media_type=media, headers={**_HEADERS, "Cache-Control": "public, max-age=86400"})
