"""Request bodies of /v1/customers (API.md §16) and the §19 string rules they follow: no control
character (U+0000-U+001F, U+007F) in an email or a name; tab, line feed and carriage return kept in free
text (description, metadata values) but never a NUL. Unknown fields are refused (extra="forbid")."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr
from pydantic_core import PydanticCustomError

from paygate.domain import emails
from paygate.errors import InvalidRequest

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all but \t \n \r


def _plain(v: str) -> str:
    if _CONTROL.search(v):
        raise PydanticCustomError("parameter_invalid", "Control characters are not allowed here.")
    return v


def _free(v: str) -> str:
    if _CONTROL_IN_FREE_TEXT.search(v):
        raise PydanticCustomError("parameter_invalid", "Control characters other than tab and line breaks are "
                                  "not allowed.")
    return v


def _email(v: str) -> str:
    if not emails.valid_address(v):
        raise PydanticCustomError("parameter_invalid", "Not a valid email address.")
    return v


def _metadata(v: dict[str, str]) -> dict[str, str]:
    if len(v) > 50:
        raise PydanticCustomError("parameter_invalid", "metadata may hold at most 50 keys.")
    for k, val in v.items():
        if not k or len(k) > 40 or len(val) > 500:
            raise PydanticCustomError("parameter_invalid", "metadata keys are 1-40 characters, values at most 500.")
        _plain(k)
        _free(val)
    return v


Email = Annotated[StrictStr, Field(max_length=254), AfterValidator(_plain), AfterValidator(_email)]
Name = Annotated[StrictStr, Field(max_length=255), AfterValidator(_plain)]
Description = Annotated[StrictStr, Field(max_length=1000), AfterValidator(_free)]
Metadata = Annotated[dict[StrictStr, StrictStr], AfterValidator(_metadata)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateCustomer(Strict):
    email: Email | None = None
    name: Name | None = None
    description: Description | None = None
    metadata: Metadata = Field(default_factory=dict)


class UpdateCustomer(Strict):
    """PATCH: a field sent is set (null clears email, name or description); metadata replaces the whole."""

    email: Email | None = None
    name: Name | None = None
    description: Description | None = None
    metadata: Metadata | None = None


def plain_param(value: str | None, param: str) -> str | None:
    """A path or query string under the §19 rule: a control character is 400, never a 500 or a lookup."""
    if value is not None and _CONTROL.search(value):
        raise InvalidRequest("parameter_invalid", f"{param} may not contain control characters.", param=param)
    return value
