"""Webhook delivery loop (placeholder until webhooks land)."""

from __future__ import annotations

import asyncio

from paygate.services.gateway import Gateway


async def run(gw: Gateway, stop: asyncio.Event) -> None:
    await stop.wait()
