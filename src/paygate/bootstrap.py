"""The one place that builds the gateway with its acquirers: for the API, the worker and the tests.

`build_gateway(settings, pool)` connects every acquirer of `PAYGATE_ACQUIRERS` (Settings.acquirer_urls,
in configuration order) through the simulator's protocol; tests pass `acquirers=` (an in-memory
acquirer, or a SimBank over an ASGI transport) instead of swapping a client on a built gateway.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from paygate.acquirers.base import Acquirer
from paygate.acquirers.simbank import SimBank
from paygate.config import Settings
from paygate.services.gateway import Gateway
from paygate.store.db import Conn


def connect_acquirers(settings: Settings) -> dict[str, Acquirer]:
    return {name: SimBank(url, name=name, webhook_secret=settings.bank_webhook_secret,
                          timeout_s=settings.bank_timeout_s, attempts=settings.bank_attempts)
            for name, url in settings.acquirer_urls.items()}


def build_gateway(settings: Settings, pool: AsyncConnectionPool[Conn],
                  acquirers: Mapping[str, Acquirer] | None = None) -> Gateway:
    if acquirers is not None and not acquirers:
        raise ValueError("a gateway needs at least one acquirer")
    return Gateway(pool=pool, acquirers=dict(acquirers) if acquirers is not None else connect_acquirers(settings),
                   settings=settings)
