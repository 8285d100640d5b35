"""services.routing.plan against PostgreSQL: the merchant's routing, ordered by health, with the probe of
a cooled-down acquirer claimed by one payment only (API.md §14) — what the authorize flow calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from paygate.bootstrap import build_gateway
from paygate.config import Settings
from paygate.domain.routing import Facts
from paygate.services import acquirer_health, merchants
from paygate.services import routing as service
from paygate.services.gateway import Gateway, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store.db import make_pool

CARD = Facts(amount=1000, currency="USD", method="card", card_brand="visa")


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    pool = make_pool(database_url, min_size=1, max_size=8)
    await pool.open(wait=True)
    settings = Settings(database_url=database_url, acquirers="alpha=http://127.0.0.1:9,beta=http://127.0.0.1:9,"
                        "gamma=http://127.0.0.1:9", acquirer_trip_after=2, acquirer_cooldown_s=30)
    gw = build_gateway(settings, pool)  # the acquirers are never called here
    try:
        yield gw
    finally:
        await gw.aclose()
        await pool.close()


async def _merchant(gw: Gateway) -> str:
    m = await merchants.create(gw.pool, name="Shop", email=f"shop-{id(gw)}@example.com", password="correct-horse-1")
    return m.merchant_id


async def _fail(gw: Gateway, name: str, times: int, back_s: float = 0) -> None:
    async with gw.pool.connection() as conn, conn.transaction():
        for i in range(times):
            await acquirer_health.record_attempt(conn, gw, payment_id=f"p{i}", merchant_id="m", acquirer=name,
                                                 result="unavailable", failure_code=None,
                                                 at=utcnow() - timedelta(seconds=back_s))


async def test_plan_follows_routing_skips_down_and_hands_the_probe_to_one_payment(gw: Gateway) -> None:
    merchant_id = await _merchant(gw)
    assert await service.plan(gw, merchant_id, CARD) == ["alpha", "beta", "gamma"]  # the default routing

    routing = service.validate(gw, {"default": ["gamma", "beta", "alpha"],
                                    "rules": [{"when": {"currency": ["inr"]}, "acquirers": ["beta", "alpha"]}]})
    await service.replace(gw, Principal(merchant_id, "secret"), routing, KeyHandle(merchant_id, None))
    assert await service.plan(gw, merchant_id, CARD) == ["gamma", "beta", "alpha"]
    inr = Facts(amount=1000, currency="INR", method="upi")
    assert await service.plan(gw, merchant_id, inr) == ["beta", "alpha"]

    await _fail(gw, "beta", 2)  # tripped now: cooling for 30 s
    assert await service.plan(gw, merchant_id, inr) == ["alpha"]
    await _fail(gw, "alpha", 2)
    assert await service.plan(gw, merchant_id, inr) == ["beta", "alpha"]  # all down: the list as is

    await _fail(gw, "gamma", 2, back_s=31)  # tripped 31 s ago: its cooldown is over, a probe is due
    async with gw.pool.connection() as conn, conn.transaction():  # beta answers again: up
        await acquirer_health.record_attempt(conn, gw, payment_id="p", merchant_id="m", acquirer="beta",
                                             result="declined", failure_code="card_declined")
    plans = await asyncio.gather(*(service.plan(gw, merchant_id, CARD) for _ in range(6)))
    assert sorted(plans) == [["beta"]] * 5 + [["gamma", "beta"]], plans  # one payment probes gamma
    assert await service.plan(gw, merchant_id, CARD) == ["beta"]  # the probe's lease holds
    async with gw.pool.connection() as conn:
        snap = await acquirer_health.snapshot(conn, ["alpha", "beta", "gamma"])
    assert (snap["gamma"].status, snap["gamma"].phase) == ("down", "cooling")
    assert (snap["beta"].status, snap["alpha"].status) == ("up", "down")
    async with gw.pool.connection() as conn, conn.transaction():  # the probe answered: gamma is up
        await acquirer_health.record_attempt(conn, gw, payment_id="p", merchant_id="m", acquirer="gamma",
                                             result="succeeded", failure_code=None)
    assert await service.plan(gw, merchant_id, CARD) == ["gamma", "beta"]
