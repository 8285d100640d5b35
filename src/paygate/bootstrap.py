"""The one place that builds the gateway with its acquirers: for the API, the worker and the tests (and
the one place that turns the settings into a simulated bank's configuration).

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
from paygate.simbank.config import BankConfig
from paygate.store.db import Conn


def bank_config(settings: Settings, name: str) -> BankConfig:
    """The simulator's own configuration (simbank/config.py) from the PAYGATE_BANK_* settings: the simulator
    never reads the gateway's Settings itself."""
    return BankConfig(webhook_secret=settings.bank_webhook_secret, name=name,
                      failure_rate=settings.bank_failure_rate, lost_rate=settings.bank_lost_rate,
                      latency_ms=settings.bank_latency_ms, duplicate_rate=settings.bank_duplicate_rate,
                      upi_delay_ms=settings.bank_upi_delay_ms, statement_timeout_ms=settings.db_statement_timeout_ms,
                      lock_timeout_ms=settings.db_lock_timeout_ms)


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
