"""The application context (paygate.http): an app built with `create_app(settings)` runs on those settings,
not on the environment's — here, the idempotency fingerprint key — and its state is one typed object."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from paygate.api.app import create_app
from paygate.config import Settings
from paygate.http.context import AppContext
from paygate.services import merchants

pytestmark = pytest.mark.asyncio(loop_scope="session")


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://paygate.test") as http:
        yield http


async def test_an_apps_idempotency_uses_its_own_fingerprint_key(database_url: str) -> None:
    apps = [create_app(Settings(database_url=database_url, fingerprint_key=secrets.token_hex(32),
                                log_level="warning")) for _ in range(2)]
    async with AsyncExitStack() as stack:
        one, two = [await stack.enter_async_context(served(app)) for app in apps]
        ctx = apps[0].state.context
        assert isinstance(ctx, AppContext) and ctx.gateway.settings.fingerprint_key != \
            apps[1].state.context.gateway.settings.fingerprint_key
        made = await merchants.create(ctx.gateway.pool, name="Shop", email=f"m-{secrets.token_hex(4)}@example.com",
                                      password="a-long-password")
        auth = {"Authorization": f"Bearer {made.secret_key}", "Idempotency-Key": "same-key"}
        body = {"amount": 1_000, "currency": "USD"}
        first = await one.post("/v1/orders", json=body, headers=auth)
        assert first.status_code == 201
        again = await one.post("/v1/orders", json=body, headers=auth)
        assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
        # The same request through an app with another fingerprint key is not "the same" to it: had the
        # key come from the environment, both apps would agree and this would be a replay.
        other = await two.post("/v1/orders", json=body, headers=auth)
        assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
