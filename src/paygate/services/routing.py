"""A merchant's routing (API.md §14): read it, replace it, and plan a payment's acquirers.

The PUT body is validated by `domain.routing.parse` — the one validator the API and the dashboard share
— against the acquirers configured now; a refused body changes nothing.
"""

from __future__ import annotations

from typing import Any

from paygate.domain import routing as rules
from paygate.domain import views
from paygate.domain.routing import Facts, Routing, RoutingError
from paygate.errors import InvalidRequest
from paygate.services import acquirer_health
from paygate.services.gateway import Gateway, Outcome, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import routing as store
from paygate.store.db import transaction


def configured(gw: Gateway) -> list[str]:
    """The gateway's acquirers, in configuration order (built from PAYGATE_ACQUIRERS, or given by a test)."""
    return list(gw.acquirers)


def view(document: dict[str, Any], updated_at: Any) -> dict[str, Any]:
    return {"object": "routing", "default": document["default"], "rules": document["rules"],
            "updated_at": views.ts(updated_at)}


def validate(gw: Gateway, body: Any) -> Routing:
    """The body as routing rules, or 400 naming the offending path in `param`."""
    try:
        return rules.parse(body, configured(gw))
    except RoutingError as err:
        raise InvalidRequest(err.code, err.message, param=err.param) from None


async def current(gw: Gateway, merchant_id: str) -> tuple[Routing, dict[str, Any]]:
    """The merchant's routing rules and their public view (the default routing until it sets one)."""
    async with gw.pool.connection() as conn:
        row = await store.get(conn, merchant_id)
    return _routing(gw, row)


def _routing(gw: Gateway, row: dict[str, Any] | None) -> tuple[Routing, dict[str, Any]]:
    if row is None:
        routing = rules.default_routing(configured(gw))
        return routing, view(rules.to_document(routing), None)
    return rules.from_document(row["document"]), view(row["document"], row["updated_at"])


async def retrieve(gw: Gateway, who: Principal) -> dict[str, Any]:
    return (await current(gw, who.merchant_id))[1]


async def replace(gw: Gateway, who: Principal, routing: Routing, key: KeyHandle) -> Outcome:
    """PUT: the validated rules replace the merchant's routing, and the response is stored with the key."""
    async with transaction(gw.pool) as conn:
        row = await store.put(conn, who.merchant_id, rules.to_document(routing), utcnow())
        outcome = Outcome.of(200, view(row["document"], row["updated_at"]))
        await key.finish(conn, outcome)
    return outcome


async def plan(gw: Gateway, merchant_id: str, facts: Facts) -> list[str]:
    """The acquirers a payment tries, in order: the merchant's routing, ordered by health, with the
    probes of its list claimed (services/acquirer_health.py `probe_or_skip`)."""
    names = configured(gw)
    async with gw.pool.connection() as conn:  # the routing and the health: one statement (decision 0023)
        snap, row = await acquirer_health.snapshot_and_routing(conn, names, merchant_id)
    routing, _ = _routing(gw, row)
    listed, _order = rules.matched(routing, facts, names)
    probing = {n for n in listed if snap[n].phase == "probe_due" and await acquirer_health.probe_or_skip(gw, n)}
    standing = {n: snap[n].standing(probing=n in probing) for n in names}
    return rules.choose(routing, facts, standing, names)
