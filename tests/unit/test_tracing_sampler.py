"""The sampler `paygate.tracing.setup` uses: traces of work are kept, a statement or call that would start
a trace of its own (a loop polling the database) is dropped."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from paygate.tracing import work_sampler


def test_client_spans_are_kept_inside_work_and_dropped_alone() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=work_sampler())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):  # a poll: no trace of its own
        pass
    with tracer.start_as_current_span("POST /v1/payments", kind=SpanKind.SERVER), \
            tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT):
        pass
    with tracer.start_as_current_span("webhook.deliver"), tracer.start_as_current_span("POST", kind=SpanKind.CLIENT):
        pass
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["INSERT", "POST", "POST /v1/payments",
                                                                     "webhook.deliver"]
    provider.shutdown()
