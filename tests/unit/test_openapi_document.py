"""/openapi.json says what the API answers (api/openapi.py), and the 405s and body errors it found."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from paygate.api import openapi
from paygate.api.app import create_app
from paygate.api.errors import from_validation
from paygate.config import Settings
from paygate.domain import text


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # never served: no lifespan runs, so nothing connects to this database
    return create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_no_operation_documents_fastapis_422_and_every_v1_one_documents_our_errors(app: FastAPI) -> None:
    doc = app.openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, method, op in operations(doc):
        if not path.startswith("/v1/"):
            continue
        responses = op["responses"]
        for status in ("400", "401", "500", "503"):
            assert responses[status]["content"]["application/json"]["schema"] == error_ref, (method, path, status)
        if method in ("post", "patch", "delete") and path != "/v1/bank/events":
            assert responses["422"]["content"]["application/json"]["schema"] == error_ref  # key reused
            assert {"409", "413", "415"} <= responses.keys()
        if path == "/v1/bank/events":
            assert "security" not in op
        else:
            assert op["security"] == [{"bearerKey": []}, {"basicKey": []}]
    assert "402" in doc["paths"]["/v1/payments"]["post"]["responses"]


def test_path_and_query_strings_carry_the_no_control_character_rule(app: FastAPI) -> None:
    pattern = re.compile(text.PLAIN_PATTERN)
    seen = 0
    for _, _, op in operations(app.openapi()):
        for param in op.get("parameters", []):
            schema = param["schema"]
            for branch in [schema, *schema.get("anyOf", [])]:
                if branch.get("type") == "string" and param["in"] in ("path", "query"):
                    assert branch["pattern"] == text.PLAIN_PATTERN, param
                    seen += 1
    assert seen > 20
    assert pattern.match("pay_123") and not pattern.match("pay_\x00")


def test_writes_document_the_idempotency_key_and_creates_link_to_what_takes_their_id(app: FastAPI) -> None:
    doc = app.openapi()
    post = doc["paths"]["/v1/payments"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])
    links = post["responses"]["201"]["links"]
    capture = doc["paths"]["/v1/payments/{payment_id}/capture"]["post"]["operationId"]
    assert links["CapturePayment"] == {"operationId": capture, "parameters": {"payment_id": "$response.body#/id"}}
    assert links["RefundPayment"]["requestBody"] == {"payment_id": "$response.body#/id"}
    listing = doc["paths"]["/v1/payments"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing["required"] == ["object", "data", "has_more"]


def test_request_schemas_document_their_real_constraints(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    amount = schemas["CreateOrder"]["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (1, 99_999_999)
    assert {"USD", "usd", "JPY"} <= set(schemas["CreateOrder"]["properties"]["currency"]["enum"])
    assert schemas["CreateRefund"]["properties"]["payment_id"]["pattern"] == text.PLAIN_PATTERN


def test_allowed_methods_are_all_the_documented_ones(app: FastAPI) -> None:
    assert openapi.allowed_methods(app, "/v1/payments") == ["GET", "POST"]
    assert openapi.allowed_methods(app, "/v1/webhook_endpoints/we_1") == ["DELETE", "GET", "PATCH"]
    assert openapi.allowed_methods(app, "/checkout/ord_1") is None


@pytest.mark.asyncio(loop_scope="session")
async def test_a_405_lists_every_method_of_the_resource(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.put("/v1/payments")
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
        assert r.json()["error"]["code"] == "method_not_allowed"
        r = await c.request("OPTIONS", "/v1/webhook_endpoints/we_1")
        assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, PATCH"


def test_a_missing_body_says_so_instead_of_naming_param_none() -> None:
    err = from_validation(RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}]))
    assert err.code == "parameter_missing" and err.param is None and "None" not in err.message
