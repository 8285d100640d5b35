"""Request bodies. Unknown fields are refused; custom error types double as the public error codes.

Every string field is one of the text types below (`PlainStr`, `FreeStr`), or has a check of its own that
is stricter (a card number: ASCII digits; a CVC: a pattern; metadata: checked key by key). They apply
the one rule of domain/text.py (no control characters; free text may keep tab, LF and CR), so that a NUL
is a 400 naming the field rather than a 500 from the database.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from paygate.domain import authentication, cards, emails, money, text, upi


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _refuse_control(value: str, info: ValidationInfo, *, free_text: bool) -> str:
    why = text.problem(value, free_text=free_text)
    if why is not None:
        name = info.field_name or "The value"
        raise PydanticCustomError("parameter_invalid", f"{name} {why}.")
    return value


def _plain(value: str, info: ValidationInfo) -> str:
    return _refuse_control(value, info, free_text=False)


def _free(value: str, info: ValidationInfo) -> str:
    return _refuse_control(value, info, free_text=True)


# json_schema_extra only documents the rule in /openapi.json; the validators enforce it (with our codes).
PlainStr = Annotated[StrictStr, AfterValidator(_plain), Field(json_schema_extra={"pattern": text.PLAIN_PATTERN})]
"""Ids, codes, URLs, names: no control character at all."""
FreeStr = Annotated[StrictStr, AfterValidator(_free), Field(json_schema_extra={"pattern": text.FREE_TEXT_PATTERN})]
"""Text people write (description, reason, metadata values): tab, LF and CR are kept, nothing else."""


def _amount(v: int) -> int:
    if v > money.MAX_AMOUNT:
        raise PydanticCustomError("amount_too_large", f"amount must be at most {money.MAX_AMOUNT}.")
    if v < money.MIN_AMOUNT:
        raise PydanticCustomError("parameter_invalid", "amount must be a positive integer.")
    return v


def _currency(v: str) -> str:
    code = money.normalize_currency(v)
    if code is None:
        raise PydanticCustomError("parameter_invalid", "currency must be a supported ISO 4217 code.")
    return code


def _metadata(v: dict[str, str]) -> dict[str, str]:
    if len(v) > 50:
        raise PydanticCustomError("parameter_invalid", "metadata may hold at most 50 keys.")
    for k, val in v.items():
        if not k or len(k) > 40 or len(val) > 500:
            raise PydanticCustomError("parameter_invalid", "metadata keys are 1-40 characters, values at most 500.")
        if not text.acceptable(k) or not text.acceptable(val, free_text=True):
            raise PydanticCustomError(
                "parameter_invalid", "metadata keys may not contain control characters, nor values any but tab, "
                "line feed and carriage return.")
    return v


def _card_number(v: str) -> str:
    number = cards.normalize_number(v)
    if number is None:
        raise PydanticCustomError(
            "invalid_number", "The card number is not a valid card number (ASCII digits; spaces are ignored).")
    return number


def _vpa(v: str) -> str:
    if not upi.valid_vpa(v):
        raise PydanticCustomError("invalid_vpa", "The VPA is not a valid UPI address (name@bank).")
    return v


def _return_url(v: str) -> str:
    why = authentication.return_url_problem(v)
    if why is not None:
        raise PydanticCustomError("parameter_invalid", f"return_url {why}.")
    return v


def _email(v: str) -> str:
    if not emails.valid_address(v):
        raise PydanticCustomError("parameter_invalid", "Not a valid email address.")
    return v


Amount = Annotated[StrictInt, AfterValidator(_amount),
                   Field(json_schema_extra={"minimum": money.MIN_AMOUNT, "maximum": money.MAX_AMOUNT})]
_CURRENCIES = sorted(money.CURRENCY_EXPONENTS)
Currency = Annotated[PlainStr, AfterValidator(_currency),
                     Field(json_schema_extra={"enum": [*_CURRENCIES, *(c.lower() for c in _CURRENCIES)]})]
Metadata = Annotated[dict[StrictStr, StrictStr], AfterValidator(_metadata), Field(json_schema_extra={
    "maxProperties": 50,
    "propertyNames": {"minLength": 1, "maxLength": 40, "pattern": text.PLAIN_PATTERN},
    "additionalProperties": {"type": "string", "maxLength": 500, "pattern": text.FREE_TEXT_PATTERN},
})]
ShortText = Annotated[PlainStr, Field(max_length=255)]
LongText = Annotated[FreeStr, Field(max_length=1000)]
Email = Annotated[PlainStr, AfterValidator(_email)]
# where the customer's browser goes after authenticating (§15): any http(s) URL, only ever redirected to (§19)
ReturnUrl = Annotated[PlainStr, AfterValidator(_return_url),
                      Field(max_length=authentication.MAX_RETURN_URL, json_schema_extra={"format": "uri"})]


class Card(Strict):
    number: Annotated[StrictStr, AfterValidator(_card_number),
                      Field(json_schema_extra={"pattern": "^ *([0-9] *){12,19}$"})]  # and Luhn-valid
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)]
    exp_year: Annotated[StrictInt, Field(ge=0, le=9999)]
    cvc: Annotated[StrictStr, Field(pattern=r"^[0-9]{3,4}$")]  # ASCII: [0-9] in pydantic's (Rust) regex
    name: ShortText | None = None


class Upi(Strict):
    vpa: Annotated[PlainStr, AfterValidator(_vpa)]


class PaymentMethod(Strict):
    type: Literal["card", "upi"]
    card: Card | None = None
    upi: Upi | None = None

    @model_validator(mode="after")
    def _one_method(self) -> PaymentMethod:
        if self.type == "card" and self.card is None:
            raise PydanticCustomError("parameter_missing", "payment_method.card is required for type card.")
        if self.type == "upi" and self.upi is None:
            raise PydanticCustomError("parameter_missing", "payment_method.upi is required for type upi.")
        if (self.type == "card" and self.upi is not None) or (self.type == "upi" and self.card is not None):
            raise PydanticCustomError("parameter_invalid", "payment_method holds details of another type.")
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


# A saved method's id (§16), sent as a string in place of the payment method object.
SavedMethodId = Annotated[PlainStr, Field(pattern=r"^pm_[0-9a-zA-Z]{1,40}$", max_length=43)]
# The tags are left out of error parameter names (api/errors.py `param_name`): `payment_method[card][number]`.
NEW_METHOD_TAG, SAVED_METHOD_TAG = "new-payment-method", "saved-payment-method"
MethodOrSaved = Annotated[
    Annotated[PaymentMethod, Tag(NEW_METHOD_TAG)] | Annotated[SavedMethodId, Tag(SAVED_METHOD_TAG)],
    Discriminator(lambda v: SAVED_METHOD_TAG if isinstance(v, str) else NEW_METHOD_TAG),
]


class CreatePayment(Strict):
    amount: Amount | None = None
    currency: Currency | None = None
    payment_method: MethodOrSaved
    customer: ShortText | None = None  # a cus_ id (§16); customer_id is the merchant's free-form reference
    save_payment_method: StrictBool = False
    off_session: StrictBool = False
    capture_method: Literal["automatic", "manual"] = "automatic"
    order_id: ShortText | None = None
    customer_id: ShortText | None = None
    description: LongText | None = None
    metadata: Metadata = Field(default_factory=dict)
    receipt_email: Email | None = None
    return_url: ReturnUrl | None = None


class CreatePaymentMethod(Strict):
    """POST /v1/payment_methods (§16): a card verified at an acquirer, then saved for the customer."""

    customer: ShortText
    type: Literal["card"]
    card: Card


class Capture(Strict):
    amount: Amount | None = None


class CreateRefund(Strict):
    payment_id: ShortText
    amount: Amount | None = None
    reason: LongText | None = None
    metadata: Metadata = Field(default_factory=dict)


class CreateOrder(Strict):
    amount: Amount
    currency: Currency
    receipt: ShortText | None = None
    notes: Metadata = Field(default_factory=dict)
    customer: ShortText | None = None  # a cus_ id: the checkout offers its saved cards (§16)
    return_url: ReturnUrl | None = None  # §15: the hosted checkout's return-link


class SendLink(Strict):
    email: Email
