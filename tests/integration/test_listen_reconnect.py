"""The LISTEN connections come back by themselves when the server drops them (a failover, an idle reap):
the worker's delivery loop and the API's key cache are woken by a NOTIFY sent after the drop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from paygate.bootstrap import build_gateway
from paygate.config import Settings
from paygate.domain.ids import new_id
from paygate.services import merchants
from paygate.services.gateway import Gateway, Principal
from paygate.services.merchants import KeyCache
from paygate.store.db import listen_connection, make_pool
from paygate.store.events import NOTIFY_CHANNEL
from paygate.store.merchants import KEYS_CHANNEL
from paygate.webhooks.sender import Sender
from paygate.worker.deliveries import DeliveryLoop
from tests.integration.test_webhooks_queue import HttpReceiver, emit, endpoint
from tests.polling import eventually


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    pool = make_pool(database_url, min_size=1, max_size=4)
    await pool.open(wait=True)
    settings = Settings(database_url=database_url, webhook_retry_schedule="0,1,2", worker_poll_s=30.0,
                        webhook_allow_private=True)
    gw = build_gateway(settings, pool)  # the acquirers are never called here
    try:
        yield gw
    finally:
        await gw.aclose()
        await pool.close()


def listeners(database_url: str, channel: str) -> list[int]:
    """Backend pids of this database's sessions whose last statement was LISTEN on `channel`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
                            (f"LISTEN {channel}",)).fetchall()
    return [int(r[0]) for r in rows]


def terminate(database_url: str, pids: list[int]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_the_delivery_loop_listens_again_after_its_connection_is_killed(gw: Gateway, database_url: str) -> None:
    made = await merchants.create(gw.pool, name="M", email=f"{new_id('m')}@example.com", password="pw-long-enough")
    who = Principal(made.merchant_id, "secret")
    receiver = await HttpReceiver.start()
    stop = asyncio.Event()
    try:
        await endpoint(gw, who, url=receiver.url)
        async with Sender(allow_private=True) as sender:
            loop = DeliveryLoop(gw, sender, poll_s=30.0)  # polls every 30 s: only NOTIFY wakes it in time
            task = asyncio.create_task(loop.run(stop))
            await asyncio.wait_for(loop.listening.wait(), 5)
            before = await eventually(lambda: listeners(database_url, NOTIFY_CHANNEL), 5)
            await asyncio.to_thread(terminate, database_url, before)
            # gone, then back on a new backend
            again = await eventually(
                lambda: loop.listening.is_set() and [p for p in listeners(database_url, NOTIFY_CHANNEL)
                                                     if p not in before], 10)
            assert again
            assert not receiver.got
            ids = await emit(gw, who, n=3)
            await eventually(lambda: len(receiver.got) >= 3, 5)  # woken by the NOTIFY, not by the poll
            assert len(ids) == 3
            stop.set()
            await asyncio.wait_for(task, 10)
    finally:
        stop.set()
        await receiver.stop()


async def test_the_key_cache_listens_again_after_its_connection_is_killed(database_url: str) -> None:
    cache = KeyCache()
    cache.start(database_url)
    try:
        await asyncio.wait_for(cache.listening.wait(), 5)
        before = await eventually(lambda: listeners(database_url, KEYS_CHANNEL), 5)
        await asyncio.to_thread(terminate, database_url, before)
        await eventually(lambda: cache.listening.is_set() and [p for p in listeners(database_url, KEYS_CHANNEL)
                                                                if p not in before], 10)
        generation = cache._generation
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, 'm')", (KEYS_CHANNEL,))
        await eventually(lambda: cache._generation > generation, 5)  # the notification made it forget
    finally:
        await cache.aclose()


async def test_every_connection_notices_a_vanished_server(database_url: str) -> None:
    """Keepalives and tcp_user_timeout on pooled and LISTEN connections: a primary gone without closing its
    sockets fails them within seconds instead of leaving them waiting on TCP (store/db.py)."""
    pool = make_pool(database_url, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            pooled = conn.info.get_parameters()
        async with await listen_connection(database_url) as conn:
            listening = conn.info.get_parameters()
    finally:
        await pool.close()
    for params in (pooled, listening):
        assert params.get("keepalives") == "1"
        assert params.get("keepalives_idle") == "5"
        assert params.get("tcp_user_timeout") == "10000"
