"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request): request ids, body limits."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paygate.api.metrics import LATENCY, REQUESTS
from paygate.errors import ApiError, InvalidRequest, PaygateError

MAX_BODY = 1_048_576


log = structlog.get_logger("paygate.api")


def _reply(err: PaygateError, request_id: bytes) -> tuple[Message, Message]:
    body = orjson.dumps(err.body())
    start: Message = {
        "type": "http.response.start",
        "status": err.status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"request-id", request_id)],
    }
    return start, {"type": "http.response.body", "body": body}


# The metrics' children per (method, status): `labels()` is a locked lookup of its own on every call, and the
# set of pairs is small (the methods uvicorn parses times the statuses paygate answers).
_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}


def _answered(method: str, status: int, seconds: float) -> None:
    pair = _children.get((method, status))
    if pair is None:
        pair = _children[(method, status)] = (REQUESTS.labels(method, str(status)), LATENCY.labels(method))
    pair[0].inc()
    pair[1].observe(seconds)


class Edge:
    """Adds `Request-Id` to every response and refuses oversized or non-JSON bodies before routing."""

    def __init__(self, app: ASGIApp, *, form_prefixes: tuple[str, ...] = (),
                 raw_body_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.form_prefixes = form_prefixes  # paths under these take bodies other than JSON
        self.raw_body_paths = raw_body_paths  # and so do these exact paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b"req_" + secrets.token_hex(12).encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        started = time.perf_counter()
        method = scope["method"]

        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal started_response
            if message["type"] == "http.response.start":
                started_response = True
                message["headers"] = [*message.get("headers", []), (b"request-id", request_id)]
                _answered(method, message["status"], time.perf_counter() - started)
            await send(message)

        headers: dict[bytes, bytes] = dict(scope["headers"])
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                await self._refuse(send, InvalidRequest("request_too_large", "The request body exceeds 1 MB.",
                                                        status=413), request_id)
                return
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            has_body = (length is not None and length not in (b"0", b"")) or b"transfer-encoding" in headers
            path = scope["path"]
            if has_body and ctype != b"application/json" and not path.startswith(self.form_prefixes) \
                    and path not in self.raw_body_paths:
                await self._refuse(send, InvalidRequest("unsupported_media_type",
                                                        "Send request bodies as application/json.", status=415),
                                   request_id)
                return
            receive = _limited(receive)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Our error handlers answer everything expected; this is a bug. Answer it here, so that even a
            # 500 carries the Request-Id, and log it with that id (never the request body).
            log.exception("unhandled_error", request_id=request_id.decode(), error=type(exc).__name__)
            if not started_response:
                await self._refuse(send, ApiError("internal_error",
                                                  "Something went wrong on our side; it has been logged."),
                                   request_id)

    @staticmethod
    async def _refuse(send: Send, err: PaygateError, request_id: bytes) -> None:
        start, body = _reply(err, request_id)
        await send(start)
        await send(body)


class BodyTooLarge(Exception):
    pass


def _limited(receive: Receive) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise BodyTooLarge
        return message

    return wrapped
