"""/metrics across processes: `paygate api --workers 2` counts every request whichever process answered
it (and whichever answers the scrape); the worker exports its gauges on a port of its own."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import httpx
import psutil
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.client import card, new_key
from tests.e2e.procs import MakeStack, free_port, wait_for

N = 120


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def not_found_count(text: str) -> float:
    return sample(text, "paygate_http_requests_total", {"method": "GET", "status": "404"}) or 0.0


def per_process_not_found(metrics_dir: Path) -> dict[int, float]:
    """The 404s each API process counted, read from its own file alone."""
    out: dict[int, float] = {}
    for f in metrics_dir.glob("counter_*.db"):
        pid = int(f.stem.split("_")[1])
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(f, alone)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=alone)  # type: ignore[no-untyped-call]
            for family in registry.collect():
                for s in family.samples:
                    if s.name == "paygate_http_requests_total" and s.labels.get("status") == "404":
                        out[pid] = out.get(pid, 0.0) + s.value
    return out


async def test_metrics_sum_every_api_process(make_stack: MakeStack) -> None:
    stack = make_stack(api_workers=2, worker=False)
    api = stack.procs["api"]
    assert api.pid is not None
    workers = psutil.Process(api.pid).children(recursive=True)
    dirs = {p.environ().get("PROMETHEUS_MULTIPROC_DIR") for p in workers}
    assert len(workers) >= 2 and len(dirs) == 1 and None not in dirs  # one fresh directory for all of them
    metrics_dir = Path(next(iter(dirs)) or "")

    sem = asyncio.Semaphore(24)

    async def one(i: int) -> None:
        async with sem, httpx.AsyncClient(base_url=stack.api_url, timeout=10) as http:  # a new connection each
            r = await http.get(f"/v1/no-such-route-{i}")
            assert r.status_code == 404

    await asyncio.gather(*[one(i) for i in range(N)])
    counts = per_process_not_found(metrics_dir)
    assert sum(counts.values()) == N
    assert len([pid for pid, n in counts.items() if n > 0]) == 2, counts  # both processes answered some

    for _ in range(10):  # each scrape on a new connection: whichever process answers, it reports them all
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{stack.api_url}/metrics")
        assert r.status_code == 200
        assert not_found_count(r.text) == N

    api.stop()  # a clean stop removes the run's directory: the next start counts from zero
    assert wait_for(lambda: not metrics_dir.exists(), 10)


async def test_metrics_with_a_single_api_process(make_stack: MakeStack) -> None:
    stack = make_stack(api_workers=1, worker=False)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as http:
        for i in range(7):
            assert (await http.get(f"/v1/no-such-route-{i}")).status_code == 404
        r = await http.get("/metrics")
    assert not_found_count(r.text) == 7


def test_the_worker_exports_its_gauges_on_its_own_port(make_stack: MakeStack) -> None:
    port = free_port()
    stack = make_stack(PAYGATE_WORKER_METRICS_PORT=str(port), PAYGATE_WEBHOOK_RETRY_SCHEDULE="0,600")
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str | None:
        try:
            r = httpx.get(url, timeout=2)
        except httpx.HTTPError:
            return None
        return r.text if r.status_code == 200 else None

    assert wait_for(lambda: scrape() is not None, 15)
    text = scrape() or ""
    assert sample(text, "paygate_webhook_queue_depth", {}) == 0
    assert sample(text, "paygate_acquirer_up", {"acquirer": "bank"}) == 1
    assert sample(text, "paygate_recovery_backlog", {"kind": "capture"}) == 0
    for typ in ("unknown_reference", "amount_mismatch", "missing_from_settlement"):
        assert sample(text, "paygate_reconciliation_exceptions_open", {"type": typ}) == 0

    # events for an endpoint that refuses connections: they wait in the queue (next try in 10 minutes)
    m = stack.merchant()
    auth = {"Authorization": f"Bearer {m['secret_key']}"}
    with httpx.Client(base_url=stack.api_url, headers=auth, timeout=10) as http:
        dead = free_port()
        r = http.post("/v1/webhook_endpoints", json={"url": f"http://127.0.0.1:{dead}/h", "enabled_events": ["*"]})
        assert r.status_code == 201, r.text
        for _ in range(3):
            r = http.post("/v1/payments", json={"amount": 1000, "currency": "USD", "payment_method": card()},
                          headers={"Idempotency-Key": new_key()})
            assert r.status_code == 201, r.text
    assert wait_for(lambda: (sample(scrape() or "", "paygate_webhook_queue_depth", {}) or 0) >= 3, 20)
