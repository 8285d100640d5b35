"""`paygate worker`: the background loops, each independent so that one slow loop never stalls another."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import structlog

from paygate import heap, tracing
from paygate.bootstrap import build_gateway
from paygate.config import Settings
from paygate.logs import configure_logging
from paygate.services import authentication, settlements
from paygate.services.gateway import Gateway
from paygate.store.db import make_pool
from paygate.worker import deliveries, emails, expiry, maintenance, recovery
from paygate.worker import metrics as worker_metrics

log = structlog.get_logger("paygate.worker")

Loop = Callable[[Gateway, asyncio.Event], Awaitable[None]]


async def every(interval_s: float, stop: asyncio.Event, name: str, step: Callable[[], Awaitable[object]]) -> None:
    """Run `step` until stopped; errors (the database being away, say) are logged and retried."""
    while not stop.is_set():
        busy = False
        try:
            result = await step()
            busy = bool(result) if isinstance(result, int) else False
        except Exception as exc:
            log.warning("loop_error", loop=name, error=type(exc).__name__, detail=str(exc)[:200])
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


def loops(gw: Gateway, stop: asyncio.Event, *, metrics: bool = False) -> list[Awaitable[None]]:
    out: list[Awaitable[None]] = [
        every(0.5, stop, "recovery", lambda: recovery.recover_once(gw)),
        every(1.0, stop, "expiry", lambda: expiry.expire_once(gw)),
        every(1.0, stop, "authentication_timeout", lambda: authentication.expire_once(gw)),  # §15
        every(2.0, stop, "completer", lambda: maintenance.complete_abandoned_keys(gw)),
        every(600.0, stop, "reaper", lambda: maintenance.reap(gw)),
        every(1.0, stop, "reconcile", lambda: settlements.reconcile_once(gw)),  # §18
        every(gw.settings.settlement_poll_s, stop, "settlement_poll", lambda: settlements.poll_banks(gw)),
        deliveries.run(gw, stop),
        emails.run(gw, stop),
    ]
    if metrics:
        out.append(every(worker_metrics.REFRESH_S, stop, "metrics", lambda: worker_metrics.refresh(gw)))
    return out


async def run(settings: Settings) -> None:
    configure_logging(settings.log_level)
    if not settings.database_url:
        raise SystemExit("PAYGATE_DATABASE_URL is not set.")
    emails.check_settings(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tracing.setup("paygate-worker")  # before the pool connects; nothing unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    metrics_on = False
    try:
        metrics_on = worker_metrics.start(settings.worker_metrics_host, settings.worker_metrics_port,
                                          list(settings.acquirer_urls))
    except OSError as exc:  # the port is taken: metrics are not worth stopping payments for; say so loudly
        log.error("worker_metrics_unavailable", port=settings.worker_metrics_port, error=str(exc))
    pool = make_pool(settings.database_url, min_size=1, max_size=min(8, settings.db_pool_max), name="worker",
                     statement_timeout_ms=settings.db_statement_timeout_ms, lock_timeout_ms=settings.db_lock_timeout_ms)
    await pool.open(wait=False)
    gw = build_gateway(settings, pool)
    heap.freeze_once()  # what exists by now lives as long as the process (paygate/heap.py)
    log.info("worker_started")
    try:
        await asyncio.gather(*loops(gw, stop, metrics=metrics_on))
    finally:
        await gw.aclose()
        await pool.close()
        log.info("worker_stopped")
