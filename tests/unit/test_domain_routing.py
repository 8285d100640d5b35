"""Routing rules (API.md §14), pure: validation of a PUT body and the choice of a payment's acquirers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from paygate.domain import routing
from paygate.domain.routing import (
    CARD_BRANDS,
    Facts,
    Routing,
    RoutingError,
    Rule,
    Standing,
    When,
    choose,
    default_routing,
    from_document,
    parse,
    to_document,
)

CONFIGURED = ["alpha", "beta", "gamma", "delta"]
CURRENCIES = ["USD", "EUR", "INR", "JPY"]

names = st.lists(st.sampled_from(CONFIGURED), min_size=1, max_size=4, unique=True).map(tuple)
whens = st.builds(
    When,
    currency=st.none() | st.lists(st.sampled_from(CURRENCIES), min_size=1, unique=True).map(tuple),
    method=st.none() | st.lists(st.sampled_from(["card", "upi"]), min_size=1, unique=True).map(tuple),
    card_brand=st.none() | st.lists(st.sampled_from(CARD_BRANDS), min_size=1, unique=True).map(tuple),
    amount_gte=st.none() | st.integers(0, 10_000),
    amount_lt=st.none() | st.integers(10_001, 20_000),
)
rules_ = st.builds(Rule, acquirers=names, when=whens, order=st.sampled_from(["priority", "success_rate"]),
                   name=st.none() | st.text(min_size=1, max_size=10))
routings = st.builds(Routing, default=names, rules=st.lists(rules_, max_size=5).map(tuple))
card_facts = st.builds(Facts, amount=st.integers(1, 20_000), currency=st.sampled_from(CURRENCIES),
                       method=st.just("card"), card_brand=st.sampled_from(CARD_BRANDS))
upi_facts = st.builds(Facts, amount=st.integers(1, 20_000), currency=st.sampled_from(CURRENCIES),
                      method=st.just("upi"), card_brand=st.none())
facts_ = card_facts | upi_facts
standings = st.dictionaries(st.sampled_from(CONFIGURED), st.builds(
    Standing, down=st.booleans(), approval_rate=st.none() | st.floats(0, 1)))


# --- choosing: laws ----------------------------------------------------------------------------------------

@settings(max_examples=300)
@given(routings, facts_, standings)
def test_any_rules_and_payment_give_a_deterministic_valid_list(r: Routing, f: Facts, h: dict[str, Standing]) -> None:
    got = choose(r, f, h, CONFIGURED)
    assert got == choose(r, f, h, CONFIGURED)  # deterministic
    assert got, "never empty while acquirers are configured"
    assert set(got) <= set(CONFIGURED)
    assert len(got) == len(set(got))
    listed, _ = routing.matched(r, f, CONFIGURED)
    assert set(got) <= set(listed)  # only the matched list's acquirers


@settings(max_examples=300)
@given(routings, facts_, standings)
def test_down_acquirers_are_skipped_unless_all_of_the_list_are_down(
    r: Routing, f: Facts, h: dict[str, Standing]
) -> None:
    got = choose(r, f, h, CONFIGURED)
    listed, _ = routing.matched(r, f, CONFIGURED)
    up = [n for n in listed if not h.get(n, Standing()).down]
    if up:
        assert sorted(got) == sorted(up)
    else:
        assert sorted(got) == sorted(listed)


@settings(max_examples=300)
@given(names, standings)
def test_success_rate_orders_by_descending_rate_unrated_first_ties_in_listed_order(
    listed: tuple[str, ...], h: dict[str, Standing]
) -> None:
    up = {n: Standing(down=False, approval_rate=s.approval_rate) for n, s in h.items()}
    r = Routing(default=("alpha",), rules=(Rule(acquirers=listed, order="success_rate"),))
    got = choose(r, Facts(100, "USD", "card", "visa"), up, CONFIGURED)
    assert sorted(got) == sorted(listed)
    rates = [up.get(n, Standing()).approval_rate for n in got]
    unrated = [i for i, rate in enumerate(rates) if rate is None]
    assert unrated == list(range(len(unrated)))  # the unrated lead
    rated = [rate for rate in rates if rate is not None]
    assert rated == sorted(rated, reverse=True)
    for a, b in itertools.pairwise(got):  # equal rates keep the listed order
        if rates[got.index(a)] == rates[got.index(b)]:
            assert listed.index(a) < listed.index(b)


@given(routings, facts_)
def test_priority_keeps_the_listed_order_when_all_are_up(r: Routing, f: Facts) -> None:
    listed, order = routing.matched(r, f, CONFIGURED)
    if order == "priority":
        assert choose(r, f, {}, CONFIGURED) == listed


@given(routings)
def test_the_canonical_document_round_trips(r: Routing) -> None:
    assume(all(rule.when.card_brand is None or rule.when.method is None or "card" in rule.when.method
               for rule in r.rules))  # otherwise refused: it matches nothing (tested below)
    doc = to_document(r)
    assert parse(doc, CONFIGURED) == r
    assert from_document(doc) == r


# --- choosing: cases ----------------------------------------------------------------------------------------

def test_first_matching_rule_wins_else_default() -> None:
    r = parse({"default": ["alpha", "beta"], "rules": [
        {"when": {"currency": ["inr"], "method": ["upi"]}, "acquirers": ["gamma"]},
        {"when": {"amount_gte": 1000, "amount_lt": 5000, "card_brand": ["visa", "amex"]}, "acquirers": ["beta"]},
        {"when": {"currency": ["INR"]}, "acquirers": ["delta"]},
    ]}, CONFIGURED)
    assert choose(r, Facts(100, "INR", "upi"), {}, CONFIGURED) == ["gamma"]
    assert choose(r, Facts(100, "INR", "card", "visa"), {}, CONFIGURED) == ["delta"]
    assert choose(r, Facts(1000, "USD", "card", "amex"), {}, CONFIGURED) == ["beta"]
    assert choose(r, Facts(5000, "USD", "card", "amex"), {}, CONFIGURED) == ["alpha", "beta"]  # amount_lt excl.
    assert choose(r, Facts(999, "USD", "card", "visa"), {}, CONFIGURED) == ["alpha", "beta"]
    assert choose(r, Facts(2000, "USD", "card", "mastercard"), {}, CONFIGURED) == ["alpha", "beta"]


def test_default_routing_lists_every_configured_acquirer_in_order() -> None:
    assert choose(default_routing(CONFIGURED), Facts(1, "USD", "card", "visa"), {}, CONFIGURED) == CONFIGURED


def test_all_down_gives_the_list_as_is_and_one_up_gives_only_it() -> None:
    r = Routing(default=("alpha", "beta"))
    down = {"alpha": Standing(down=True), "beta": Standing(down=True)}
    assert choose(r, Facts(1, "USD", "card"), down, CONFIGURED) == ["alpha", "beta"]
    down["beta"] = Standing(down=False)
    assert choose(r, Facts(1, "USD", "card"), down, CONFIGURED) == ["beta"]


def test_success_rate_example() -> None:
    r = Routing(default=("alpha",), rules=(Rule(acquirers=("alpha", "beta", "gamma", "delta"),
                                                order="success_rate"),))
    h = {"alpha": Standing(approval_rate=0.5), "beta": Standing(approval_rate=0.9),
         "gamma": Standing(approval_rate=None), "delta": Standing(approval_rate=0.5)}
    assert choose(r, Facts(1, "USD", "card"), h, CONFIGURED) == ["gamma", "beta", "alpha", "delta"]


def test_acquirers_removed_from_configuration_are_skipped() -> None:
    r = Routing(default=("alpha", "beta"), rules=(Rule(acquirers=("gamma",), when=When(currency=("USD",))),))
    now = ["alpha", "delta"]  # beta and gamma were removed by the operator
    assert choose(r, Facts(1, "USD", "card"), {}, now) == ["alpha"]  # the rule has none left: no match
    assert choose(Routing(default=("beta",)), Facts(1, "USD", "card"), {}, now) == ["alpha", "delta"]


# --- validation ----------------------------------------------------------------------------------------

def test_currency_is_normalised_and_duplicates_in_conditions_merge() -> None:
    r = parse({"default": ["beta"], "rules": [{"when": {"currency": ["usd", "USD", "Eur"]}, "acquirers": ["alpha"],
                                               "name": "dollars"}]}, CONFIGURED)
    assert r.rules[0].when.currency == ("USD", "EUR")
    assert to_document(r) == {"default": ["beta"], "rules": [
        {"name": "dollars", "when": {"currency": ["USD", "EUR"]}, "acquirers": ["alpha"], "order": "priority"}]}


def test_rules_may_be_omitted_and_when_may_be_empty() -> None:
    assert parse({"default": ["alpha"]}, CONFIGURED) == Routing(default=("alpha",))
    r = parse({"default": ["alpha"], "rules": [{"when": {}, "acquirers": ["beta"], "order": "success_rate"}]},
              CONFIGURED)
    assert r.rules[0].when == When()


BAD: list[tuple[Any, str, str]] = [
    ([], "body", "parameter_invalid"),
    ({"rules": []}, "default", "parameter_missing"),
    ({"default": []}, "default", "parameter_invalid"),
    ({"default": ["alpha", "alpha"]}, "default[1]", "parameter_invalid"),
    ({"default": ["omega"]}, "default[0]", "parameter_invalid"),
    ({"default": [3]}, "default[0]", "parameter_invalid"),
    ({"default": "alpha"}, "default", "parameter_invalid"),
    ({"default": ["alpha"], "extra": 1}, "extra", "parameter_unknown"),
    ({"default": ["alpha"], "rules": {}}, "rules", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"]}] * 51}, "rules", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"when": {}}]}, "rules[0].acquirers", "parameter_missing"),
    ({"default": ["alpha"], "rules": [{"acquirers": []}]}, "rules[0].acquirers", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"]}, {"acquirers": ["zeta"]}]},
     "rules[1].acquirers[0]", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "colour": "red"}]}, "rules[0].colour",
     "parameter_unknown"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "order": "random"}]}, "rules[0].order",
     "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "name": ""}]}, "rules[0].name", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": []}]}, "rules[0].when", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"]},
                                      {"acquirers": ["alpha"], "when": {"currency": ["XXX"]}}]},
     "rules[1].when.currency[0]", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"currency": []}}]},
     "rules[0].when.currency", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"currency": "USD"}}]},
     "rules[0].when.currency", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"method": ["cash"]}}]},
     "rules[0].when.method[0]", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"card_brand": ["diners"]}}]},
     "rules[0].when.card_brand[0]", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"method": ["upi"], "card_brand": ["visa"]}}]},
     "rules[0].when.card_brand", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount_gte": -1}}]},
     "rules[0].when.amount_gte", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount_gte": 1.5}}]},
     "rules[0].when.amount_gte", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount_lt": True}}]},
     "rules[0].when.amount_lt", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount_lt": 0}}]},
     "rules[0].when.amount_lt", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount_gte": 500, "amount_lt": 500}}]},
     "rules[0].when.amount_lt", "parameter_invalid"),
    ({"default": ["alpha"], "rules": [{"acquirers": ["alpha"], "when": {"amount": 5}}]},
     "rules[0].when.amount", "parameter_unknown"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD)
def test_malformed_bodies_are_refused_naming_the_offending_path(body: Any, param: str, code: str) -> None:
    with pytest.raises(RoutingError) as err:
        parse(body, CONFIGURED)
    assert (err.value.param, err.value.code) == (param, code)
    assert err.value.message
