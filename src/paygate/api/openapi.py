"""The OpenAPI document (/openapi.json) says what the API really answers (API.md §3), not FastAPI's guess.

FastAPI documents a 422 `HTTPValidationError` for every operation, which paygate never sends (a bad
parameter is a 400 in our error shape), and nothing else. This completes the generated document in one
place rather than on every route:

- the error responses each operation can give, all in the one `Error` shape of API.md §3;
- the key schemes (Bearer or Basic with the secret or publishable key), on every /v1 operation but the
  bank's signed callbacks;
- the text rule of API.md §19 on every path and query string parameter (no control character), so that
  a client generated from the document, or a fuzzer, knows it;
- /metrics is Prometheus text, /readyz may be 503.

tests/e2e/test_schemathesis.py holds the API to this document.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from paygate.domain import text

_ERROR_TYPES = ["invalid_request_error", "authentication_error", "card_error", "permission_error",
                "invalid_state_error", "idempotency_error", "rate_limit_error", "api_error"]

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message"],
            "properties": {
                "type": {"type": "string", "enum": _ERROR_TYPES},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": "string", "description": "The parameter at fault, when there is one."},
                "payment": {"type": "object", "description": "402 only: the failed payment."},
            },
        },
    },
}

_WHEN = {
    "400": "Bad or missing parameters (parameter_missing, parameter_invalid, parameter_unknown, invalid_number, "
           "invalid_vpa, amount_too_large, ...).",
    "401": "Missing or wrong API key.",
    "402": "The bank declined (card_error).",
    "403": "A publishable key used beyond its rights.",
    "404": "No such object (resource_missing): unknown, or another merchant's.",
    "409": "Not allowed in the object's state (invalid_state_error), or the Idempotency-Key is in use.",
    "413": "The request body exceeds 1 MB.",
    "415": "A request body that is not application/json.",
    "422": "The Idempotency-Key was used with another request (idempotency_key_reused).",
    "429": "Too many requests (with Retry-After).",
    "500": "Our fault (api_error); nothing internal is disclosed.",
    "502": "The bank failed or answered nonsense (api_error).",
    "503": "The database is unreachable (with Retry-After): nothing half-done.",
    "504": "The bank did not answer in time (api_error).",
}

_READ = ["400", "401", "403", "404", "429", "500", "503"]
_WRITE = [*_READ, "409", "413", "415", "422"]
_BANK = ["402", "502", "504"]  # operations that call the bank
_CALLS_BANK = {("post", "/v1/payments"), ("post", "/v1/payments/{payment_id}/capture"),
               ("post", "/v1/payments/{payment_id}/void"), ("post", "/v1/refunds"),
               ("post", "/v1/webhook_deliveries/{delivery_id}/retry")}
_CALLBACK = "/v1/bank/events"


# What each create operation's answer leads to (OpenAPI links): the operations that take its `id`. They tell
# a client generator, and the stateful fuzzer, that POST /v1/payments is followed by capture, void,
# refund, retrieval of that payment.
_LINKS: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {
    # (method, producer path): [(link name, method, consumer path, parameter), ...]
    ("post", "/v1/payments"): [
        ("GetPayment", "get", "/v1/payments/{payment_id}", "payment_id"),
        ("CapturePayment", "post", "/v1/payments/{payment_id}/capture", "payment_id"),
        ("VoidPayment", "post", "/v1/payments/{payment_id}/void", "payment_id"),
        ("RefundPayment", "post", "/v1/refunds", "payment_id"),
        ("ListPaymentRefunds", "get", "/v1/refunds", "payment_id"),
    ],
    ("post", "/v1/orders"): [
        ("GetOrder", "get", "/v1/orders/{order_id}", "order_id"),
        ("ListOrderPayments", "get", "/v1/orders/{order_id}/payments", "order_id"),
    ],
    ("post", "/v1/refunds"): [("GetRefund", "get", "/v1/refunds/{refund_id}", "refund_id")],
    ("post", "/v1/webhook_endpoints"): [
        ("GetEndpoint", "get", "/v1/webhook_endpoints/{endpoint_id}", "endpoint_id"),
        ("UpdateEndpoint", "patch", "/v1/webhook_endpoints/{endpoint_id}", "endpoint_id"),
        ("DeleteEndpoint", "delete", "/v1/webhook_endpoints/{endpoint_id}", "endpoint_id"),
        ("RotateSecret", "post", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret", "endpoint_id"),
    ],
}


def _add_links(doc: dict[str, Any]) -> None:
    paths = doc.get("paths", {})
    for (method, path), links in _LINKS.items():
        op = paths.get(path, {}).get(method)
        if op is None:
            continue
        created = next((code for code in ("201", "200") if code in op.get("responses", {})), None)
        if created is None:
            continue
        response = op["responses"][created]
        response["content"] = {"application/json": {"schema": {
            "type": "object", "required": ["id", "object"],
            "properties": {"id": {"type": "string"}, "object": {"type": "string"}}}}}
        out = response.setdefault("links", {})
        for name, consumer_method, consumer_path, param in links:
            target = paths.get(consumer_path, {}).get(consumer_method)
            if target is None or "operationId" not in target:
                continue
            link: dict[str, Any] = {"operationId": target["operationId"]}
            if "{" + param + "}" in consumer_path or any(p["name"] == param for p in target.get("parameters", [])):
                link["parameters"] = {param: "$response.body#/id"}
            else:  # a body field
                link["requestBody"] = {param: "$response.body#/id"}
            out[name] = link


_IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Makes the write safe to retry (API.md §4): 1-255 printable ASCII characters.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


_LIST = {"type": "object", "required": ["object", "data", "has_more"], "properties": {
    "object": {"const": "list"}, "data": {"type": "array", "items": {"type": "object"}},
    "has_more": {"type": "boolean"}}}


def _document_lists(doc: dict[str, Any]) -> None:
    """Every list answers the one shape of API.md §1; its operations are the GETs taking `limit`."""
    for ops in doc.get("paths", {}).values():
        op = ops.get("get")
        if op is None or not any(p["name"] == "limit" for p in op.get("parameters", [])):
            continue
        op["responses"]["200"]["content"] = {"application/json": {"schema": _LIST}}


def _error_response(status: str) -> dict[str, Any]:
    return {"description": _WHEN[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _complete_operation(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's HTTPValidationError: we answer 400 instead
    if path.startswith("/v1/"):
        statuses = _WRITE if method in ("post", "patch", "delete") else _READ
        if (method, path) in _CALLS_BANK:
            statuses = [*statuses, *_BANK]
        if path == _CALLBACK:  # signed by the bank, no API key
            statuses = ["400", "401", "409", "413", "500", "503"]
        else:
            op["security"] = [{"bearerKey": []}, {"basicKey": []}]
            if method in ("post", "patch", "delete"):
                op.setdefault("parameters", []).append(_IDEMPOTENCY_KEY)
        for status in sorted(statuses):
            responses.setdefault(status, _error_response(status))
    for param in op.get("parameters", []):
        schema = param.get("schema", {})
        for branch in [schema, *schema.get("anyOf", [])]:
            if branch.get("type") == "string":
                branch.setdefault("pattern", text.PLAIN_PATTERN)


def document(app: FastAPI) -> dict[str, Any]:
    """The completed document, built once (FastAPI's own caching convention: `app.openapi_schema`)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {
        "bearerKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer sk_test_…"},
        "basicKey": {"type": "http", "scheme": "basic", "description": "The key as user name, no password."},
    }
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            _complete_operation(path, method, op)
    _add_links(doc)
    _document_lists(doc)
    metrics = doc.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    readyz = doc.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz["responses"].setdefault("503", {"description": "Not ready: the database is unreachable or behind."})
    app.openapi_schema = doc
    return doc


@cache
def _templates(app: FastAPI) -> tuple[tuple[re.Pattern[str], frozenset[str]], ...]:
    doc = document(app)
    out = []
    for path, ops in doc.get("paths", {}).items():
        regex = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
        out.append((regex, frozenset(m.upper() for m in ops)))
    return tuple(out)


def allowed_methods(app: FastAPI, path: str) -> list[str] | None:
    """Every method the document lists for `path` (for a 405's Allow header), None if it is not documented.

    The router's own 405 names only the methods of the first route matching the path, so `OPTIONS
    /v1/payments` said `Allow: POST` although GET /v1/payments exists too."""
    methods: set[str] = set()
    for regex, ops in _templates(app):
        if regex.match(path):
            methods |= ops
    return sorted(methods) if methods else None
