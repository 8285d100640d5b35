"""Exception → response mapping. Nothing internal (stack, SQL, driver text) ever reaches a client."""

from __future__ import annotations

from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from paygate.api import openapi
from paygate.api.middleware import BodyTooLarge
from paygate.api.responses import error
from paygate.errors import ApiError, InvalidRequest, NotFound, PaygateError, Unavailable

log = structlog.get_logger("paygate.api")

# Our own validator error types are public codes; everything else pydantic says is parameter_invalid.
_CODES = {"amount_too_large", "invalid_number", "invalid_vpa", "parameter_missing", "parameter_invalid"}


# pydantic's names for a union's branches (http/schemas.py), not parameters
_UNNAMED = ("constrained-str", "new-payment-method", "saved-payment-method")


def param_name(loc: tuple[Any, ...]) -> str | None:
    """('body', 'payment_method', 'card', 'number') → 'payment_method[card][number]'."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    parts = [p for p in parts if not p.startswith("function-") and p not in _UNNAMED]
    if not parts:
        return None
    return parts[0] + "".join(f"[{p}]" for p in parts[1:])


def from_validation(exc: RequestValidationError) -> PaygateError:
    errs = list(exc.errors())
    if not errs:
        return InvalidRequest("parameter_invalid", "The request is invalid.")
    e = errs[0]
    kind = str(e.get("type", ""))
    loc = tuple(e.get("loc", ()))
    param = param_name(loc)
    if kind == "json_invalid":
        return InvalidRequest("parameter_invalid", "The request body is not valid JSON.")
    if kind == "extra_forbidden":
        return InvalidRequest("parameter_unknown", f"Received unknown parameter: {param}", param=param)
    if kind == "missing":
        if param is None:  # the body itself (loc ('body',)): there is no parameter to name
            return InvalidRequest("parameter_missing", "A JSON request body is required.")
        return InvalidRequest("parameter_missing", f"Missing required param: {param}.", param=param)
    if kind in _CODES:
        return InvalidRequest(kind, str(e.get("msg", "")).removeprefix("Value error, "), param=param)
    msg = str(e.get("msg", "Invalid value"))
    return InvalidRequest("parameter_invalid", f"Invalid {param}: {msg}." if param else msg, param=param)


def install(app: FastAPI) -> None:
    @app.exception_handler(PaygateError)
    async def _paygate(_: Request, exc: PaygateError) -> Response:
        return error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return error(from_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error(NotFound("route"))
        if exc.status_code == 405:
            response = error(InvalidRequest("method_not_allowed", "Method not allowed.", status=405))
            # RFC 9110: a 405 lists the methods the resource supports, all of them
            documented = openapi.allowed_methods(request.app, request.url.path)
            allow = ", ".join(documented) if documented else (exc.headers or {}).get("Allow")
            if allow:
                response.headers["Allow"] = allow
            return response
        if isinstance(exc.__cause__, BodyTooLarge) or isinstance(exc.__context__, BodyTooLarge):
            return error(InvalidRequest("request_too_large", "The request body exceeds 1 MB.", status=413))
        if 400 <= exc.status_code < 500:
            return error(InvalidRequest("parameter_invalid", str(exc.detail), status=exc.status_code))
        return error(ApiError("api_error", str(exc.detail), status=exc.status_code))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> Response:
        return error(InvalidRequest("request_too_large", "The request body exceeds 1 MB.", status=413))

    @app.exception_handler(psycopg.errors.QueryCanceled)  # statement_timeout, and lock_timeout below
    @app.exception_handler(psycopg.errors.LockNotAvailable)
    async def _db_timeout(_: Request, exc: psycopg.OperationalError) -> Response:
        # The session timeouts (store/db.py) fired: the transaction was rolled back, nothing is half-done,
        # and the same request may well succeed in a moment. Logged apart from "database down".
        log.warning("database_timeout", error=type(exc).__name__, sqlstate=exc.sqlstate)
        return error(Unavailable("The database is busy; retry shortly."))

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(_: Request, exc: psycopg.OperationalError) -> Response:
        log.warning("database_unavailable", error=type(exc).__name__)
        return error(Unavailable())

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, exc: PoolTimeout) -> Response:
        log.warning("database_unavailable", error="pool_timeout")
        return error(Unavailable())
