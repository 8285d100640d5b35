"""Tracing end to end: a payment through the API (in this process, its spans kept by the SDK's in-memory
exporter) against a real `paygate bank` process, then its webhook delivered to a local receiver. One trace
holds the request, its SQL and its bank call; the bank logs the `traceparent` it received, with that trace
id; the webhook request carries the delivery span's trace."""

from __future__ import annotations

import asyncio
import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from paygate import serve_secrets, tracing
from paygate.api.app import create_app
from paygate.config import Settings
from paygate.services import merchants
from paygate.services.gateway import Gateway
from paygate.worker import attempts
from paygate.worker.deliveries import DeliveryLoop
from tests.e2e.client import card, new_key
from tests.e2e.procs import MakeStack, Proc, free_port, wait_for
from tests.integration.test_webhooks_queue import HttpReceiver
from tests.polling import eventually


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()


def trace_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def traced_bank_requests(log: Path) -> list[dict[str, str]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and "bank_request_traced" in line:
            out.append(json.loads(line))
    return out


async def test_a_payment_is_one_trace_from_the_api_through_its_sql_to_the_bank(
    spans: InMemorySpanExporter, database_url: str, tmp_path: Path,
) -> None:
    secrets_ = serve_secrets.fresh()
    bank_port = free_port()
    bank = Proc("bank", ["bank", "--port", str(bank_port)],
                {"PAYGATE_DATABASE_URL": database_url, "PAYGATE_LOG_LEVEL": "info", **secrets_},
                f"http://127.0.0.1:{bank_port}/healthz", log_dir=tmp_path)
    bank.start()
    assert bank.log_path is not None
    bank_log = bank.log_path
    receiver = await HttpReceiver.start()
    try:
        settings = Settings(database_url=database_url, bank_url=f"http://127.0.0.1:{bank_port}", env="development",
                            bank_webhook_secret=secrets_["PAYGATE_BANK_WEBHOOK_SECRET"], webhook_allow_private=True,
                            log_level="warning")
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            gw: Gateway = app.state.context.gateway
            made = await merchants.create(gw.pool, name="Traced", email=f"t-{secrets.token_hex(4)}@example.com",
                                          password="pw-long-enough")
            auth = {"Authorization": f"Bearer {made.secret_key}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://paygate.test",
                                         headers=auth, timeout=30) as http:
                r = await http.post("/v1/webhook_endpoints", json={"url": receiver.url, "enabled_events": ["*"]})
                assert r.status_code == 201, r.text
                spans.clear()
                r = await http.post("/v1/payments", json={"amount": 1500, "currency": "USD", "payment_method": card()},
                                    headers={"Idempotency-Key": new_key()})
                assert r.status_code == 201, r.text
                assert r.json()["status"] == "captured"

            finished = spans.get_finished_spans()
            server = [s for s in finished if s.kind == SpanKind.SERVER]
            assert len(server) == 1, [s.name for s in finished]
            trace_id = trace_hex(server[0])
            in_trace = [s for s in finished if trace_hex(s) == trace_id]
            sql = [s for s in in_trace if s.attributes and s.attributes.get("db.system") == "postgresql"]
            assert sql, [s.name for s in in_trace]  # the request's statements
            to_bank = [s for s in in_trace if s.kind == SpanKind.CLIENT and s.attributes and
                       str(bank_port) in str(s.attributes.get("url.full", s.attributes.get("http.url", "")))]
            assert to_bank, [(s.name, dict(s.attributes or {})) for s in in_trace]
            # the bank got our trace: its log names the traceparent of each call, this trace's id in it
            assert wait_for(lambda: any(trace_id in t["traceparent"] for t in traced_bank_requests(bank_log)), 10)
            seen = [t for t in traced_bank_requests(bank_log) if trace_id in t["traceparent"]]
            assert {t["path"] for t in seen} >= {"/v1/authorizations"}, seen
            ours = {format(s.context.span_id, "016x") for s in to_bank if s.context}
            assert all(t["traceparent"].split("-")[2] in ours for t in seen)  # each call's parent: our client span

            # the webhook delivery: a span of its own, its trace in the request the receiver got
            spans.clear()
            async with attempts.sender_for(gw) as sender:
                loop = DeliveryLoop(gw, sender, poll_s=0.2)
                stop = asyncio.Event()
                task = asyncio.create_task(loop.run(stop))
                await eventually(lambda: len(receiver.got) >= 1, 10)
                stop.set()
                await asyncio.wait_for(task, 10)
            delivered = [s for s in spans.get_finished_spans() if s.name == "webhook.deliver"]
            assert delivered
            parent = receiver.got[0].headers["traceparent"]
            assert parent.split("-")[1] in {trace_hex(s) for s in delivered}
    finally:
        await receiver.stop()
        bank.stop()


def test_log_lines_carry_the_trace_id_inside_a_span(spans: InMemorySpanExporter) -> None:
    assert tracing.add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}  # no span: nothing added
    with tracing.span("unit"):
        line = tracing.add_trace_ids(None, "info", {"event": "x"})
    (unit,) = [s for s in spans.get_finished_spans() if s.name == "unit"]
    assert line["trace_id"] == trace_hex(unit)
    assert unit.context is not None and line["span_id"] == format(unit.context.span_id, "016x")


def test_tracing_is_off_without_an_endpoint() -> None:
    assert not tracing.configured({})
    assert tracing.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing.active()
    with tracing.span("nothing"):  # a no-op: nothing to record it
        assert tracing.current_ids() == {}


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: the (service name, span) pairs of every export it got."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for rs in request.resource_spans:
                    names = [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"]
                    service = names[0] if names else ""
                    for ss in rs.scope_spans:
                        collector.spans.extend((service, s) for s in ss.spans)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_real_processes_export_over_otlp_and_share_one_trace(make_stack: MakeStack) -> None:
    collector = Collector()
    try:
        stack = make_stack(worker=False, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_BSP_SCHEDULE_DELAY="100")
        m = stack.merchant()
        r = httpx.post(f"{stack.api_url}/v1/payments",
                       json={"amount": 900, "currency": "USD", "payment_method": card()}, timeout=30,
                       headers={"Authorization": f"Bearer {m['secret_key']}", "Idempotency-Key": new_key()})
        assert r.status_code == 201, r.text

        def shared() -> set[bytes]:
            def server(service: str) -> set[bytes]:
                return {s.trace_id for svc, s in collector.spans if svc == service and s.kind == Span.SPAN_KIND_SERVER}

            return server("paygate-api") & server("paygate-bank")

        assert wait_for(lambda: bool(shared()), 15)  # the bank's request span continues the API's trace
        (trace_id,) = shared()
        sql = [s for svc, s in collector.spans if svc == "paygate-api" and s.trace_id == trace_id
               and any(a.key == "db.system" for a in s.attributes)]
        assert sql
    finally:
        collector.close()
