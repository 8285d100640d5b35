"""API.md §19 "Bad input": the one string rule (domain/text.py), ASCII card numbers, dashboard amounts, and
where the rule is applied (request schemas, paths and query strings of every route, dashboard forms)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from paygate.api import errors
from paygate.api.middleware import Edge
from paygate.domain import cards, text
from paygate.errors import InvalidRequest
from paygate.http.parameters import refuse_control_characters
from paygate.http.schemas import NEW_METHOD_TAG, SAVED_METHOD_TAG, CreateOrder, CreatePayment, CreateRefund
from paygate.web.forms import parse_amount

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]
WHITESPACE = ["\t", "\n", "\r"]
OTHER_CONTROL = [c for c in CONTROL if c not in WHITESPACE]
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def upi_payment(**extra: Any) -> dict[str, Any]:
    return {"amount": 100, "currency": "USD", "payment_method": {"type": "upi", "upi": {"vpa": "success@upi"}}, **extra}


def card_payment(number: str) -> dict[str, Any]:
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return {"amount": 100, "currency": "USD", "payment_method": {"type": "card", "card": card}}


Model = type[CreatePayment | CreateOrder | CreateRefund]


def first_error(model: Model, body: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    err = info.value.errors()[0]
    # the payment method union's branch tags are not parameters (api/errors.py leaves them out too)
    return str(err["type"]), tuple(p for p in err["loc"] if p not in (NEW_METHOD_TAG, SAVED_METHOD_TAG))


# --- the rule ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ch", CONTROL)
def test_every_control_character_is_refused_in_plain_text(ch: str) -> None:
    assert text.problem(f"pay_{ch}x") is not None
    assert f"U+{ord(ch):04X}" in (text.problem(ch) or "")


@pytest.mark.parametrize("ch", OTHER_CONTROL)
def test_free_text_refuses_control_characters_other_than_tab_lf_cr(ch: str) -> None:
    assert text.problem(f"a{ch}b", free_text=True) is not None


def test_free_text_keeps_tab_lf_cr_and_plain_text_does_not() -> None:
    assert text.acceptable("line one\r\n\tline two", free_text=True)
    assert not text.acceptable("line one\r\n\tline two")
    assert text.acceptable("Ünïcödé, emoji 💳 and U+0080 \x80 are fine")


def test_lone_surrogates_are_refused_everywhere() -> None:
    assert not text.acceptable("a\ud800b") and not text.acceptable("\udfff", free_text=True)


@given(st.text())
def test_the_rule_is_exactly_no_control_character(value: str) -> None:
    has_control = _CONTROL_RE.search(value) is not None
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    assert text.acceptable(value) == (not has_control and not has_surrogate)


@given(st.text(), st.sampled_from(OTHER_CONTROL), st.text())
def test_any_string_with_a_forbidden_control_character_is_refused(before: str, ch: str, after: str) -> None:
    value = before + ch + after
    assert not text.acceptable(value) and not text.acceptable(value, free_text=True)


def test_storable_finds_nul_and_surrogates_anywhere_in_a_document() -> None:
    assert text.storable({"a": ["b", {"c": "tab\tok\x1b"}], "n": 1, "none": None})
    assert not text.storable({"a": ["b", {"c": "x\x00"}]})
    assert not text.storable({"k\x00": 1}) and not text.storable(["\ud800"])


# --- request schemas -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "loc"), [
    (upi_payment(description="a\x00b"), ("description",)),
    (upi_payment(customer_id="cus\x00"), ("customer_id",)),
    (upi_payment(order_id="ord_\x00"), ("order_id",)),
    (upi_payment(customer_id="cus\t1"), ("customer_id",)),
    (upi_payment(description="a\x1bb"), ("description",)),
    (upi_payment(metadata={"k": "v\x00"}), ("metadata",)),
    (upi_payment(metadata={"k\n": "v"}), ("metadata",)),
    (upi_payment(currency="US\x00"), ("currency",)),
    ({**upi_payment(), "payment_method": {"type": "upi", "upi": {"vpa": "success@upi\n"}}},
     ("payment_method", "upi", "vpa")),
])
def test_payment_strings_with_control_characters_are_parameter_invalid(body: dict[str, Any],
                                                                       loc: tuple[str, ...]) -> None:
    assert first_error(CreatePayment, body) == ("parameter_invalid", loc)


@given(st.sampled_from(["description", "customer_id", "order_id", "metadata"]), st.text(max_size=20),
       st.sampled_from(OTHER_CONTROL), st.text(max_size=20))
def test_any_payment_string_with_a_forbidden_control_character_is_refused(
    field: str, before: str, ch: str, after: str
) -> None:
    value = before + ch + after
    body = upi_payment(**{field: {"note": value} if field == "metadata" else value})
    with pytest.raises(ValidationError) as info:
        CreatePayment.model_validate(body)
    assert info.value.errors()[0]["type"] == "parameter_invalid"


def test_order_and_refund_strings() -> None:
    assert first_error(CreateOrder, {"amount": 1, "currency": "USD", "receipt": "r\x00"}) == (
        "parameter_invalid", ("receipt",))
    assert first_error(CreateOrder, {"amount": 1, "currency": "USD", "notes": {"k": "\x00"}}) == (
        "parameter_invalid", ("notes",))
    assert first_error(CreateRefund, {"payment_id": "pay_x", "reason": "r\x00"}) == ("parameter_invalid", ("reason",))
    assert first_error(CreateRefund, {"payment_id": "pay_\x00"}) == ("parameter_invalid", ("payment_id",))


def test_free_text_fields_keep_tab_lf_cr() -> None:
    p = CreatePayment.model_validate(upi_payment(description="a\tb\r\nc", metadata={"note": "x\ny"}))
    assert p.description == "a\tb\r\nc" and p.metadata == {"note": "x\ny"}
    o = CreateOrder.model_validate({"amount": 1, "currency": "USD", "notes": {"n": "1\t2"}})
    assert o.notes == {"n": "1\t2"}
    r = CreateRefund.model_validate({"payment_id": "pay_x", "reason": "damaged\nin transit"})
    assert r.reason == "damaged\nin transit"


# --- card numbers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("number", [
    "٤٤٤٤٤٤٤٤٤٤٤٤٤٤٤٤",  # Arabic-Indic digits: approved by the bank with last4 "٤٤٤٤" before
    "77³³³³³³³³³³³³³³",  # superscripts: passed Luhn, then int() raised, a 500
    "\uff14" + "\uff11" * 15,  # fullwidth digits
    "4111-1111-1111-1111",  # the contract allows spaces only
    "4111\t1111 1111 1111",
    "4111111111111111\n",
    "4111111111111111\x00",
    "4111 1111 1111 1112",  # Luhn
    "41111111111",  # 11 digits
    "4" * 20,
    "",
])
def test_card_numbers_other_than_ascii_digits_and_spaces_are_invalid_number(number: str) -> None:
    assert cards.normalize_number(number) is None and not cards.luhn_valid(number)
    assert first_error(CreatePayment, card_payment(number)) == ("invalid_number", ("payment_method", "card", "number"))


@pytest.mark.parametrize("number", ["4111111111111111", "4111 1111 1111 1111", " 4242 4242 4242 4242 ",
                                    "378282246310005"])
def test_ascii_card_numbers_with_spaces_are_normalized(number: str) -> None:
    normalized = cards.normalize_number(number)
    assert normalized == number.replace(" ", "")
    parsed = CreatePayment.model_validate(card_payment(number))
    pm = parsed.payment_method
    assert not isinstance(pm, str) and pm.card is not None and pm.card.number == normalized


@given(st.text(min_size=12, max_size=24))
def test_a_normalized_number_is_only_ascii_digits(number: str) -> None:
    normalized = cards.normalize_number(number)
    if normalized is not None:
        assert re.fullmatch(r"[0-9]{12,19}", normalized) and cards.brand(normalized)
    else:
        assert not cards.luhn_valid(number)


def test_brand_never_raises_on_unvalidated_input() -> None:
    assert cards.brand("77³³") == "unknown" and cards.brand("") == "unknown"


# --- dashboard amounts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "currency", "minor"), [
    ("12.50", "USD", 1250), ("12.5", "USD", 1250), ("12", "USD", 1200), ("1,250.00", "USD", 125000),
    (" 7 ", "EUR", 700), ("100", "JPY", 100), ("999999.99", "USD", 99_999_999), ("0.01", "USD", 1), ("", "USD", None),
])
def test_plain_decimals_are_parsed(typed: str, currency: str, minor: int | None) -> None:
    assert parse_amount(typed, currency) == minor


@pytest.mark.parametrize(("typed", "currency"), [
    ("1e999990", "USD"), ("1e999999999", "USD"), ("1E2", "USD"), ("NaN", "USD"), ("Infinity", "USD"), ("-1", "USD"),
    ("+1", "USD"), ("0", "USD"), ("0.00", "USD"), ("12.345", "USD"), ("12.5", "JPY"), ("1.", "USD"), (".5", "USD"),
    ("١٢", "USD"), ("1_000", "USD"), ("0x10", "USD"), ("1 000", "USD"), ("9" * 16, "USD"),
])
def test_anything_else_is_a_form_error(typed: str, currency: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_amount(typed, currency)
    assert info.value.code == "parameter_invalid" and info.value.param == "amount"


def test_too_large_amounts_say_so() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_amount("1000000", "USD")
    assert info.value.code == "amount_too_large"


def test_an_exponent_costs_nothing() -> None:
    started = time.perf_counter()
    for typed in ("1e999990", "1e999999999", "9" * 100_000, "1." + "0" * 100_000):
        with pytest.raises(InvalidRequest):
            parse_amount(typed, "USD")
    assert time.perf_counter() - started < 0.5


@given(st.text(max_size=20), st.sampled_from(["USD", "JPY", "INR"]))
def test_a_parsed_amount_is_always_in_bounds(typed: str, currency: str) -> None:
    try:
        minor = parse_amount(typed, currency)
    except InvalidRequest:
        return
    assert minor is None or 1 <= minor <= 99_999_999


# --- paths and query strings, for every route --------------------------------------------------------

edge_app = FastAPI(dependencies=[Depends(refuse_control_characters)])
errors.install(edge_app)
edge_app.add_middleware(Edge)


@edge_app.get("/v1/items/{item_id}")
async def item(request: Request, item_id: str) -> dict[str, Any]:
    return {"id": item_id, "q": dict(request.query_params)}


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(("url", "param"), [
    ("/v1/items/%00", "item_id"),
    ("/v1/items/a%0Ab", "item_id"),
    ("/v1/items/a%09b", "item_id"),
    ("/v1/items/a%7Fb", "item_id"),
    ("/v1/items/x?customer_id=%00", "customer_id"),
    ("/v1/items/x?a=1&starting_after=pay_%1F", "starting_after"),
    ("/v1/items/x?a=1&a=%00", "a"),
    ("/v1/items/x?na%00me=1", None),
])
async def test_control_characters_in_paths_and_queries_are_400(url: str, param: str | None) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge_app), base_url="http://t") as c:
        r = await c.get(url)
    assert r.status_code == 400 and r.headers["request-id"].startswith("req_")
    err = r.json()["error"]
    assert err["code"] == "parameter_invalid" and err.get("param") == param


@pytest.mark.asyncio(loop_scope="session")
async def test_ordinary_paths_and_queries_pass() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge_app), base_url="http://t") as c:
        r = await c.get("/v1/items/pay_%C3%A9?q=a%20b&empty=")
    assert r.status_code == 200 and r.json() == {"id": "pay_é", "q": {"q": "a b", "empty": ""}}
