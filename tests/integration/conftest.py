"""The use-case tests' gateway: a real PostgreSQL (the template database) and two in-memory acquirers at the
acquirer seam (`alpha`, `beta`), with a merchant to act as. A module with other needs defines its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from paygate.acquirers.memory import MemoryAcquirer
from paygate.bootstrap import build_gateway
from paygate.config import Settings
from paygate.domain.ids import new_id
from paygate.services import merchants
from paygate.services.gateway import Gateway, Principal
from paygate.store.db import make_pool


@pytest.fixture
async def alpha() -> MemoryAcquirer:
    return MemoryAcquirer("alpha")


@pytest.fixture
async def beta() -> MemoryAcquirer:
    return MemoryAcquirer("beta")


@pytest.fixture
async def gw(database_url: str, alpha: MemoryAcquirer, beta: MemoryAcquirer) -> AsyncIterator[Gateway]:
    pool = make_pool(database_url, min_size=1, max_size=6)
    await pool.open(wait=True)
    try:
        yield build_gateway(Settings(database_url=database_url), pool, {"alpha": alpha, "beta": beta})
    finally:
        await pool.close()


@pytest.fixture
async def who(gw: Gateway) -> Principal:
    made = await merchants.create(gw.pool, name="M", email=f"{new_id('m')}@example.com", password="pw-long-enough")
    return Principal(made.merchant_id, "secret")
