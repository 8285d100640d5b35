"""The worker's Prometheus metrics, on their own port (PAYGATE_WORKER_METRICS_PORT; 0 = off).

Gauges of shared state (queue depth, lag, backlog) are read from the database every few seconds, so
every worker reports the same values: dashboards take `max` over workers, not `sum`. Acquirer health is
what this worker's recovery loop saw of each acquirer (`acquirer_answered`), kept in one small function
so that it can be fed from elsewhere (an acquirer health table) without touching the loop.
"""

from __future__ import annotations

from prometheus_client import Gauge, start_http_server

from paygate.services import reconciliation_metrics
from paygate.services.gateway import Gateway, utcnow
from paygate.store import ops_metrics
from paygate.store.db import transaction

QUEUE_DEPTH = Gauge("paygate_webhook_queue_depth", "Webhook deliveries waiting to be delivered (pending)")
DELIVERY_LAG = Gauge("paygate_webhook_delivery_lag_seconds",
                     "How long the longest-waiting due webhook delivery has been due")
RECOVERY_BACKLOG = Gauge("paygate_recovery_backlog", "Bank operations left in flight, due for the recovery loop",
                         ["kind"])
ACQUIRER_UP = Gauge("paygate_acquirer_up", "1 when the acquirer answered the recovery loop's last call, else 0",
                    ["acquirer"])
ACQUIRER_FAILURES = Gauge("paygate_acquirer_consecutive_failures",
                          "Calls of the recovery loop in a row the acquirer did not answer", ["acquirer"])

OPERATION_KINDS = ("authorization", "capture", "void", "expiry", "refund")
REFRESH_S = 5.0

_failures: dict[str, int] = {}


def acquirer_answered(acquirer: str, answered: bool) -> None:
    """Record one call to `acquirer`: did it answer at all (any outcome, even a refusal)?"""
    _failures[acquirer] = 0 if answered else _failures.get(acquirer, 0) + 1
    ACQUIRER_FAILURES.labels(acquirer).set(_failures[acquirer])
    ACQUIRER_UP.labels(acquirer).set(1 if answered else 0)


def start(host: str, port: int, acquirers: list[str]) -> bool:
    """Serve /metrics on host:port (in a thread); False when port is 0 (off)."""
    if port == 0:
        return False
    for kind in OPERATION_KINDS:
        RECOVERY_BACKLOG.labels(kind).set(0)
    for name in acquirers:  # known, not yet seen: up until a call says otherwise
        ACQUIRER_UP.labels(name).set(1)
        ACQUIRER_FAILURES.labels(name).set(0)
    start_http_server(port, addr=host)
    return True


async def refresh(gw: Gateway) -> None:
    """Read the shared gauges from the database (one short transaction)."""
    now = utcnow()
    async with transaction(gw.pool) as conn:
        hooks = await ops_metrics.webhook_backlog(conn, now)
        backlog = {row["kind"]: int(row["n"]) for row in await ops_metrics.recovery_backlog(conn, now)}
    QUEUE_DEPTH.set(int(hooks["pending"]))
    DELIVERY_LAG.set(max(0.0, float(hooks["lag_s"])))
    for kind in OPERATION_KINDS:
        RECOVERY_BACKLOG.labels(kind).set(backlog.get(kind, 0))
    await reconciliation_metrics.refresh(gw)  # the same gauge as the API's, read the same way
