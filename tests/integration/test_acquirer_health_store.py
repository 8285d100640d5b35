"""Acquirer attempts and breakers in PostgreSQL (API.md §14): one probe claim among concurrent API
processes, the breaker updated in the attempt's transaction, approval rate over the last 100 only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from paygate.domain.health import Breaker, Policy
from paygate.store import acquirer_health as store
from paygate.store.db import Conn, make_pool
from tests.polling import eventually

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(trip_after=3, cooldown=timedelta(seconds=30))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    p = make_pool(database_url, min_size=1, max_size=12)
    await p.open(wait=True)
    yield p
    await p.close()


async def _attempt(pool: AsyncConnectionPool[Conn], acquirer: str, result: str, at: datetime,
                   payment_id: str = "pay_1") -> Breaker:
    async with pool.connection() as conn, conn.transaction():
        return await store.record_attempt(conn, payment_id=payment_id, merchant_id="mer_1", acquirer=acquirer,
                                          result=result, failure_code=None, at=at, policy=POLICY)


async def _trip(pool: AsyncConnectionPool[Conn], acquirer: str) -> None:
    for i in range(3):
        await _attempt(pool, acquirer, "unavailable", T0 + timedelta(milliseconds=i))


async def _claim(pool: AsyncConnectionPool[Conn], acquirer: str, now: datetime) -> bool:
    async with pool.connection() as conn, conn.transaction():
        return await store.claim_probe(conn, acquirer, now=now, policy=POLICY)


async def test_the_breaker_trips_in_the_attempts_transaction_and_an_answer_resets_it(
    pool: AsyncConnectionPool[Conn],
) -> None:
    await _trip(pool, "alpha")
    async with pool.connection() as conn:
        got = await store.breakers(conn, ["alpha", "beta"])
    assert got["alpha"].status == "down" and got["alpha"].consecutive_failures == 3
    assert got["alpha"].down_until == T0 + timedelta(milliseconds=2, seconds=30)
    assert got["beta"] == Breaker()  # never recorded: up
    # a rolled-back attempt leaves neither its row nor its effect on the breaker
    async with pool.connection() as conn:
        async with conn.transaction(force_rollback=True):
            await store.record_attempt(conn, payment_id="p", merchant_id="m", acquirer="alpha", result="succeeded",
                                       failure_code=None, at=T0, policy=POLICY)
        assert (await store.breakers(conn, ["alpha"]))["alpha"].status == "down"
    assert await _attempt(pool, "alpha", "declined", T0 + timedelta(seconds=1)) == Breaker()
    async with pool.connection() as conn:
        assert (await store.breakers(conn, ["alpha"]))["alpha"] == Breaker()
        assert [r["result"] for r in await store.attempts_of(conn, "pay_1")] == ["unavailable"] * 3 + ["declined"]


async def test_two_concurrent_probers_get_exactly_one_claim(pool: AsyncConnectionPool[Conn]) -> None:
    await _trip(pool, "alpha")
    due = T0 + timedelta(seconds=31)
    # the first claimer holds the row lock; the second must wait for it, then find the lease
    async with pool.connection() as first, first.transaction():
        assert await store.claim_probe(first, "alpha", now=due, policy=POLICY)
        second = asyncio.create_task(_claim(pool, "alpha", due))

        async def second_waits_for_the_lock() -> bool:
            async with pool.connection() as conn:
                cur = await conn.execute(b"SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                         b"AND datname = current_database()")
                row = await cur.fetchone()
            return row is not None and row["n"] >= 1

        await eventually(second_waits_for_the_lock, within_s=5)
        assert not second.done()
    assert await second is False
    # and many at once: still one
    await _trip(pool, "beta")
    results = await asyncio.gather(*(_claim(pool, "beta", due) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_probe_result_decides(pool: AsyncConnectionPool[Conn]) -> None:
    await _trip(pool, "alpha")
    due = T0 + timedelta(seconds=31)
    assert await _claim(pool, "alpha", due)
    failed = await _attempt(pool, "alpha", "unavailable", due + timedelta(seconds=1))
    assert failed.status == "down" and failed.down_until == due + timedelta(seconds=31)
    assert not await _claim(pool, "alpha", due + timedelta(seconds=30))  # cooling again
    again = due + timedelta(seconds=61)
    assert await _claim(pool, "alpha", again)
    assert await _attempt(pool, "alpha", "succeeded", again) == Breaker()
    assert not await _claim(pool, "alpha", again)  # up: nothing to probe


async def test_approval_rate_counts_the_last_100_attempts_only(pool: AsyncConnectionPool[Conn]) -> None:
    async with pool.connection() as conn, conn.transaction():
        for i in range(50):  # the oldest 50: all approved, outside the window once 100 newer exist
            await store.record_attempt(conn, payment_id=f"p{i}", merchant_id="m1", acquirer="alpha",
                                       result="succeeded", failure_code=None, at=T0 + timedelta(seconds=i),
                                       policy=POLICY)
        for i in range(100):  # the newest 100: 25 approved, 75 not (declines and unavailability count against)
            result = "succeeded" if i % 4 == 0 else ("declined" if i % 2 else "unavailable")
            await store.record_attempt(conn, payment_id=f"q{i}", merchant_id=f"m{i % 3}", acquirer="alpha",
                                       result=result, failure_code=None, at=T0 + timedelta(seconds=100 + i),
                                       policy=POLICY)
        await store.record_attempt(conn, payment_id="b", merchant_id="m1", acquirer="beta", result="declined",
                                   failure_code="card_declined", at=T0, policy=POLICY)
    async with pool.connection() as conn:
        got = await store.recent(conn, ["alpha", "beta", "gamma"])
    assert (got["alpha"].attempts, got["alpha"].approval_rate) == (100, 0.25)
    assert (got["beta"].attempts, got["beta"].approval_rate) == (1, 0.0)
    assert (got["gamma"].attempts, got["gamma"].approval_rate) == (0, None)


async def test_standing_reads_breakers_and_recent_in_one_statement_and_agrees_with_both(
    pool: AsyncConnectionPool[Conn],
) -> None:
    await _trip(pool, "alpha")  # down, 3 attempts, none approved
    for i in range(3):
        await _attempt(pool, "beta", "succeeded" if i else "declined", T0 + timedelta(seconds=i))
    names = ["alpha", "beta", "gamma"]  # gamma: never recorded
    async with pool.connection() as conn:
        both = await store.standing(conn, names)
        breakers, recent = await store.breakers(conn, names), await store.recent(conn, names)
    assert list(both) == names
    assert {n: b for n, (b, _) in both.items()} == breakers
    assert {n: r for n, (_, r) in both.items()} == recent
    assert both["alpha"][0].status == "down" and both["beta"][1].approved == 2
    assert both["gamma"] == (Breaker(), store.Recent(0, 0))
