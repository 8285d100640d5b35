"""Prometheus metrics of the API process (each uvicorn worker process keeps its own registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("paygate_http_requests_total", "HTTP requests answered", ["method", "status"])
LATENCY = Histogram(
    "paygate_http_request_duration_seconds", "Time to answer a request", ["method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
