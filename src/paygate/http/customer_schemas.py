"""Request bodies of /v1/customers (API.md §16), built from the shared string types of http/schemas.py, so
they follow the one §19 rule (paths and queries are checked for every route by http/parameters.py).
Unknown fields are refused (extra="forbid")."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from paygate.http.schemas import Email, LongText, Metadata, ShortText, Strict

CustomerEmail = Annotated[Email, Field(max_length=254)]


class CreateCustomer(Strict):
    email: CustomerEmail | None = None
    name: ShortText | None = None
    description: LongText | None = None
    metadata: Metadata = Field(default_factory=dict)


class UpdateCustomer(Strict):
    """PATCH: a field sent is set (null clears email, name or description); metadata replaces the whole."""

    email: CustomerEmail | None = None
    name: ShortText | None = None
    description: LongText | None = None
    metadata: Metadata | None = None
