"""`paygate_reconciliation_exceptions_open{type}` (API.md §18): read from the database — at each scrape of
an API process, and on the worker's refresh — so every process reports the same figure. One definition
for both (a process that imports the API and the worker, as tests do, registers it once)."""

from __future__ import annotations

import structlog
from prometheus_client import Gauge

from paygate.services.gateway import Gateway
from paygate.store import settlements

TYPES = ("unknown_reference", "amount_mismatch", "missing_from_settlement")
# the latest scrape's reading wins across API processes (multiprocess mode), not a sum of stale ones
OPEN = Gauge("paygate_reconciliation_exceptions_open", "Reconciliation exceptions open, by type", ["type"],
             multiprocess_mode="livemostrecent")
for _type in TYPES:
    OPEN.labels(type=_type).set(0)


async def refresh(gw: Gateway) -> None:
    try:
        async with gw.pool.connection(timeout=2.0) as conn:
            counts = await settlements.open_counts(conn)
    except Exception as exc:
        structlog.get_logger("paygate.metrics").warning("reconciliation_metrics_failed", error=type(exc).__name__)
        return
    for type_ in TYPES:
        OPEN.labels(type=type_).set(counts.get(type_, 0))
