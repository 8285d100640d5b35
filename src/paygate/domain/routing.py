"""Per-merchant routing (API.md §14) as pure rules: the document a merchant PUTs, its validation against
the configured acquirers, and the choice of the acquirers a payment tries, in order.

Decisions the contract leaves open (docs/decisions/0015-routing-and-health.md):
- `approval_rate` null (no attempt in the window) sorts FIRST under `success_rate`, in listed order among
  the unrated: an acquirer nobody has tried would otherwise only ever be reached by failover, so it
  would never earn a rate. One payment gives it one; from then on its measured rate decides.
- An acquirer the merchant's routing names but the operator has since removed from PAYGATE_ACQUIRERS
  stays in the stored document (GET shows what was set) and is skipped when choosing; a rule left with no
  configured acquirer does not match; a default left empty falls back to every configured acquirer. The
  next PUT must name configured acquirers only, like any PUT (400 otherwise).
- Duplicated values in a condition list are merged; a duplicated acquirer in a list is a 400, since the
  list is an order and a name twice in it says two different things.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from paygate.domain.money import MAX_AMOUNT, normalize_currency

Method = Literal["card", "upi"]
Order = Literal["priority", "success_rate"]
METHODS: tuple[str, ...] = ("card", "upi")
ORDERS: tuple[str, ...] = ("priority", "success_rate")
# the brands domain/cards.py tells apart
CARD_BRANDS: tuple[str, ...] = ("visa", "mastercard", "amex", "discover", "rupay", "jcb", "unknown")
MAX_RULES = 50
MAX_NAME = 100
_TOP_FIELDS = ("default", "rules")
_RULE_FIELDS = ("name", "when", "acquirers", "order")
_WHEN_FIELDS = ("currency", "method", "card_brand", "amount_gte", "amount_lt")


class RoutingError(ValueError):
    """A routing document that cannot be accepted: `param` is the path of the offending value
    (`rules[1].when.currency`), `code` the API error code."""

    def __init__(self, param: str, message: str, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code


@dataclass(frozen=True)
class When:
    """Conditions, ANDed; a tuple means any of; None means "any"."""

    currency: tuple[str, ...] | None = None
    method: tuple[str, ...] | None = None
    card_brand: tuple[str, ...] | None = None
    amount_gte: int | None = None
    amount_lt: int | None = None


@dataclass(frozen=True)
class Rule:
    acquirers: tuple[str, ...]
    when: When = field(default_factory=When)
    order: Order = "priority"
    name: str | None = None


@dataclass(frozen=True)
class Routing:
    default: tuple[str, ...]
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Facts:
    """What routing may look at in a payment. `card_brand` is None for a payment that is not a card."""

    amount: int
    currency: str
    method: str
    card_brand: str | None = None


@dataclass(frozen=True)
class Standing:
    """What choosing needs of an acquirer's health: whether to skip it, and its approval rate."""

    down: bool = False
    approval_rate: float | None = None


def default_routing(configured: Sequence[str]) -> Routing:
    """A merchant's routing until it sets one: every configured acquirer, in configuration order."""
    return Routing(default=tuple(configured))


# --- validation ----------------------------------------------------------------------------------------

def _fields(value: Any, where: str, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RoutingError(where or "body", f"{where or 'The body'} must be an object.")
    for key in value:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise RoutingError(path, f"Unknown field {key!r}; expected one of {', '.join(allowed)}.",
                               "parameter_unknown")
    return value


def _acquirers(value: Any, where: str, configured: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise RoutingError(where, f"{where} must be a non-empty list of acquirer names.")
    seen: list[str] = []
    for i, name in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(name, str):
            raise RoutingError(at, f"{at} must be an acquirer name.")
        if name not in configured:
            raise RoutingError(at, f"Unknown acquirer {name!r}; the configured acquirers are "
                                   f"{', '.join(configured)}.")
        if name in seen:
            raise RoutingError(at, f"Acquirer {name!r} is listed twice.")
        seen.append(name)
    return tuple(seen)


def _choices(value: Any, where: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise RoutingError(where, f"{where} must be a non-empty list.")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or item not in allowed:
            raise RoutingError(f"{where}[{i}]", f"Unknown {what} {item!r}; expected one of {', '.join(allowed)}.")
        if item not in out:
            out.append(item)
    return tuple(out)


def _currencies(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise RoutingError(where, f"{where} must be a non-empty list of currency codes.")
    out: list[str] = []
    for i, item in enumerate(value):
        code = normalize_currency(item) if isinstance(item, str) else None
        if code is None:
            raise RoutingError(f"{where}[{i}]", f"{item!r} is not a supported currency code.")
        if code not in out:
            out.append(code)
    return tuple(out)


def _amount(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RoutingError(where, f"{where} must be an integer amount in the currency's minor unit.")
    if value < 0 or value > MAX_AMOUNT + 1:
        raise RoutingError(where, f"{where} must be between 0 and {MAX_AMOUNT + 1}.")
    return value


def _when(value: Any, where: str) -> When:
    doc = _fields(value, where, _WHEN_FIELDS)
    currency = _currencies(doc["currency"], f"{where}.currency") if "currency" in doc else None
    method = _choices(doc["method"], f"{where}.method", METHODS, "method") if "method" in doc else None
    brand = (_choices(doc["card_brand"], f"{where}.card_brand", CARD_BRANDS, "card brand")
             if "card_brand" in doc else None)
    gte = _amount(doc["amount_gte"], f"{where}.amount_gte") if "amount_gte" in doc else None
    lt = _amount(doc["amount_lt"], f"{where}.amount_lt") if "amount_lt" in doc else None
    if lt is not None and lt == 0:
        raise RoutingError(f"{where}.amount_lt", "amount_lt 0 matches no payment.")
    if gte is not None and lt is not None and gte >= lt:
        raise RoutingError(f"{where}.amount_lt", "amount_lt must be greater than amount_gte, or the rule "
                                                 "matches no payment.")
    if brand is not None and method is not None and "card" not in method:
        raise RoutingError(f"{where}.card_brand", "card_brand applies to card payments, and method excludes "
                                                  "card: the rule matches no payment.")
    return When(currency=currency, method=method, card_brand=brand, amount_gte=gte, amount_lt=lt)


def _rule(value: Any, where: str, configured: Sequence[str]) -> Rule:
    doc = _fields(value, where, _RULE_FIELDS)
    if "acquirers" not in doc:
        raise RoutingError(f"{where}.acquirers", "A rule needs acquirers.", "parameter_missing")
    name = doc.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME):
        raise RoutingError(f"{where}.name", f"name must be a string of 1 to {MAX_NAME} characters.")
    order = doc.get("order", "priority")
    if order not in ORDERS:
        raise RoutingError(f"{where}.order", f"order must be one of {', '.join(ORDERS)}.")
    when = _when(doc["when"], f"{where}.when") if "when" in doc and doc["when"] is not None else When()
    return Rule(acquirers=_acquirers(doc["acquirers"], f"{where}.acquirers", configured), when=when,
                order=order, name=name)


def parse(document: Any, configured: Sequence[str]) -> Routing:
    """A PUT body checked against the configured acquirer names. Raises RoutingError (→ 400)."""
    doc = _fields(document, "", _TOP_FIELDS)
    if "default" not in doc:
        raise RoutingError("default", "default is required: the acquirers a payment no rule matches tries.",
                           "parameter_missing")
    default = _acquirers(doc["default"], "default", configured)
    rules_doc = doc.get("rules", [])
    if not isinstance(rules_doc, list):  # null too: the document says a list, and omitting it means none
        raise RoutingError("rules", "rules must be a list.")
    if len(rules_doc) > MAX_RULES:
        raise RoutingError("rules", f"At most {MAX_RULES} rules.")
    rules = tuple(_rule(r, f"rules[{i}]", configured) for i, r in enumerate(rules_doc))
    return Routing(default=default, rules=rules)


def to_document(routing: Routing) -> dict[str, Any]:
    """The canonical JSON form (what is stored and shown): only the conditions that were given."""
    rules: list[dict[str, Any]] = []
    for rule in routing.rules:
        when = {k: (list(v) if isinstance(v, tuple) else v)
                for k in _WHEN_FIELDS if (v := getattr(rule.when, k)) is not None}
        doc: dict[str, Any] = {"when": when, "acquirers": list(rule.acquirers), "order": rule.order}
        if rule.name is not None:
            doc = {"name": rule.name, **doc}
        rules.append(doc)
    return {"default": list(routing.default), "rules": rules}


def from_document(document: Mapping[str, Any]) -> Routing:
    """A stored document back into rules, WITHOUT checking names against the configuration (a stored
    routing may name an acquirer since removed; `choose` skips it). It was validated when it was PUT."""
    rules = []
    for r in document.get("rules", []):
        w = r.get("when") or {}

        def listed(k: str, w: Mapping[str, Any] = w) -> tuple[str, ...] | None:
            return tuple(w[k]) if w.get(k) is not None else None

        when = When(currency=listed("currency"), method=listed("method"), card_brand=listed("card_brand"),
                    amount_gte=w.get("amount_gte"), amount_lt=w.get("amount_lt"))
        rules.append(Rule(acquirers=tuple(r["acquirers"]), when=when, order=r.get("order", "priority"),
                          name=r.get("name")))
    return Routing(default=tuple(document["default"]), rules=tuple(rules))


# --- choosing --------------------------------------------------------------------------------------------

def matches(when: When, facts: Facts) -> bool:
    if when.currency is not None and facts.currency.upper() not in when.currency:
        return False
    if when.method is not None and facts.method not in when.method:
        return False
    if when.card_brand is not None and (facts.card_brand is None or facts.card_brand not in when.card_brand):
        return False
    if when.amount_gte is not None and facts.amount < when.amount_gte:
        return False
    return not (when.amount_lt is not None and facts.amount >= when.amount_lt)


def matched(routing: Routing, facts: Facts, configured: Sequence[str]) -> tuple[list[str], Order]:
    """The list a payment takes (the first matching rule's, else the default) and its order, with the
    acquirers no longer configured left out. Never empty while anything is configured."""
    for rule in routing.rules:
        names = [n for n in rule.acquirers if n in configured]
        if names and matches(rule.when, facts):
            return names, rule.order
    names = [n for n in routing.default if n in configured]
    return (names or list(configured)), "priority"


def ordered(names: Sequence[str], order: Order, health: Mapping[str, Standing]) -> list[str]:
    """`priority`: as listed. `success_rate`: unrated first (see the module note), then by descending
    approval rate; a stable sort, so ties keep the listed order."""
    if order == "priority":
        return list(names)

    def key(name: str) -> tuple[int, float]:
        rate = health.get(name, Standing()).approval_rate
        return (0, 0.0) if rate is None else (1, -rate)

    return sorted(names, key=key)


def choose(routing: Routing, facts: Facts, health: Mapping[str, Standing], configured: Sequence[str]) -> list[str]:
    """The acquirers a payment tries, in order (API.md §14). Those `down` are skipped unless every one of
    the list is down; then the list as is, since trying a down acquirer beats failing without trying."""
    names, order = matched(routing, facts, configured)
    names = ordered(names, order, health)
    up = [n for n in names if not health.get(n, Standing()).down]
    return up or names
