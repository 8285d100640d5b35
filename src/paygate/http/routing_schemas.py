"""The OpenAPI description of PUT /v1/routing's body (API.md §14), so clients and fuzzers (schemathesis)
know its shape. Documentation only: the body is validated by `domain.routing.parse`, the one validator
the API and the dashboard share, which also checks what a schema cannot (configured acquirer names,
amount_gte < amount_lt) and names the offending path in `param`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from paygate.domain.routing import CARD_BRANDS, MAX_NAME, MAX_RULES

_NAME = r"^[a-z][a-z0-9_]{0,30}$"
Names = Annotated[list[Annotated[StrictStr, Field(pattern=_NAME)]], Field(min_length=1)]
Amount = Annotated[StrictInt, Field(ge=0, le=100_000_000)]
Brand = Literal["visa", "mastercard", "amex", "discover", "rupay", "jcb", "unknown"]
assert set(get_args(Brand)) == set(CARD_BRANDS)  # one list of brands


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoutingWhen(_Strict):
    """Conditions, ANDed; a list means any of. Currency codes in either case (stored upper case)."""

    currency: Annotated[list[Annotated[StrictStr, Field(pattern=r"^[A-Za-z]{3}$")]], Field(min_length=1)] | None = None
    method: Annotated[list[Literal["card", "upi"]], Field(min_length=1)] | None = None
    card_brand: Annotated[list[Brand], Field(min_length=1)] | None = None
    amount_gte: Amount | None = None
    amount_lt: Annotated[StrictInt, Field(ge=1, le=100_000_000)] | None = None


class RoutingRule(_Strict):
    name: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME)] | None = None
    when: RoutingWhen | None = None
    acquirers: Names
    order: Literal["priority", "success_rate"] = "priority"


class RoutingBody(_Strict):
    """A merchant's routing: the first rule whose `when` matches a payment gives its acquirers, else
    `default`. Every name must be a configured acquirer (GET /v1/acquirers)."""

    default: Names
    rules: Annotated[list[RoutingRule], Field(max_length=MAX_RULES)] = []


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema with its $defs inlined: an operation's requestBody cannot carry $defs."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(dict(defs[node["$ref"].rsplit("/", 1)[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def put_routing_openapi(acquirers: Sequence[str] | None = None) -> dict[str, Any]:
    """The operation's requestBody; with `acquirers` (the configured names), every acquirer list is an
    enum of them, so a client or a fuzzer generating a valid body names acquirers that exist."""
    schema = _inline(RoutingBody.model_json_schema())
    if acquirers:
        def narrow(node: Any) -> None:
            if isinstance(node, dict):
                if "pattern" in node and node.get("type") == "string" and node["pattern"] == _NAME:
                    del node["pattern"]
                    node["enum"] = list(acquirers)
                for v in node.values():
                    narrow(v)
            elif isinstance(node, list):
                for v in node:
                    narrow(v)
        narrow(schema)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def describe_acquirers(app: FastAPI, acquirers: Sequence[str]) -> None:
    """Make the app's OpenAPI document name the configured acquirers in PUT /v1/routing's body."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            operation = spec.get("paths", {}).get("/v1/routing", {}).get("put")
            if operation is not None:
                operation.update(put_routing_openapi(acquirers))
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
