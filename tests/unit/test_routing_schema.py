"""The OpenAPI description of PUT /v1/routing agrees with the validator: every document the API accepts
fits the published schema (a client generating from the schema is never told its valid body is wrong)."""

from __future__ import annotations

from hypothesis import assume, given, settings

from paygate.domain.routing import Routing, to_document
from paygate.http.routing_schemas import RoutingBody, put_routing_openapi
from tests.unit.test_domain_routing import routings


@settings(max_examples=200)
@given(routings)
def test_every_accepted_document_fits_the_schema(r: Routing) -> None:
    assume(all(rule.when.card_brand is None or rule.when.method is None or "card" in rule.when.method
               for rule in r.rules))
    RoutingBody.model_validate(to_document(r))  # raises if the schema were narrower than the validator


def test_the_schema_names_the_configured_acquirers() -> None:
    schema = put_routing_openapi(["alpha", "beta"])["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["default"]["items"]["enum"] == ["alpha", "beta"]
    generic = put_routing_openapi()["requestBody"]["content"]["application/json"]["schema"]
    assert "pattern" in generic["properties"]["default"]["items"]
