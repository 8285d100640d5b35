"""Prometheus metrics of the API processes.

`paygate api` runs several uvicorn worker processes; a scrape reaches one of them. So `paygate api` gives
them one fresh PROMETHEUS_MULTIPROC_DIR per start (cli.py), where prometheus-client keeps each process's
values in its own files, and /metrics sums every process's files (`MultiProcessCollector`): whichever
process answers, the counts are the API's. Without that variable (an app built in-process, as tests do)
the process's own registry is served.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("paygate_http_requests_total", "HTTP requests answered", ["method", "status"])
LATENCY = Histogram(
    "paygate_http_request_duration_seconds", "Time to answer a request", ["method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def render() -> tuple[bytes, str]:
    """The exposition body and its content type: every API process's metrics, summed."""
    if multiprocess_dir() is None:
        return generate_latest(), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """At an API process's shutdown: its live gauges leave the sums (its counters stay: they happened)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
