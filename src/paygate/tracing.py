"""OpenTelemetry tracing: on when OTEL_EXPORTER_OTLP_ENDPOINT (or …_TRACES_ENDPOINT) is set, off otherwise.

On, every process (`paygate api`, `worker`, `bank`) exports its spans over OTLP/HTTP: one per API request
(the ASGI middleware, which also reads an incoming W3C `traceparent`), one per SQL statement (psycopg's
cursors), one per outbound HTTP request — the acquirer calls and the webhook deliveries — which also
carries our `traceparent` to the other side (httpx's transports, instrumented globally, so no client has
to be built differently), and one per webhook delivery. Log lines carry the current trace id
(logs.py). Off, none of this is imported or set up: no SDK, no instrumentation, and `span()` is a
`nullcontext`, so tracing costs nothing.

The standard OTEL_* variables configure the exporter (endpoint, headers, timeout) and OTEL_SERVICE_NAME
the service name (default `paygate-api`, `paygate-worker`, `paygate-bank`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_provider: TracerProvider | None = None


def configured(environ: dict[str, str] | None = None) -> bool:
    """Is an OTLP endpoint configured (so tracing is on)?"""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in ENDPOINT_VARIABLES)


def active() -> bool:
    return _provider is not None


def setup(service_name: str) -> bool:
    """Once per process, before its pools connect: the SDK with an OTLP/HTTP exporter, when configured.
    Returns whether tracing is on."""
    if _provider is not None:
        return True
    if not configured():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    # OTEL_TRACES_SAMPLER, when set, is the SDK's to read (sampler=None); else ours
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else work_sampler()
    provider = TracerProvider(resource=Resource.create({"service.name": name}), sampler=sampler)
    # batched, in a thread: a request never waits on the collector; flushed at exit (shutdown_on_exit)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    return True


def work_sampler() -> Sampler:
    """Traces of work, not of polling: a CLIENT span (a SQL statement, an outbound call) that starts a
    trace of its own — the worker's loops polling the database, a pool's connection check — is dropped;
    everything inside a request or a unit of work (a webhook delivery, a recovered operation) is kept, as
    is what the caller's `traceparent` says."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, SamplingResult
    from opentelemetry.sdk.trace.sampling import Sampler as SamplerBase
    from opentelemetry.trace import SpanKind

    class _WorkRoots(SamplerBase):
        def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                          attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
            if kind == SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return "paygate.WorkRoots"

    return ParentBased(root=_WorkRoots())


def install(provider: TracerProvider) -> None:
    """Trace with `provider` (setup's, or a test's with an in-memory exporter): SQL and outbound HTTP from
    now on, and the apps passed to `instrument` afterwards."""
    global _provider
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    if _provider is not None:
        uninstall()
    trace.set_tracer_provider(provider)  # for libraries that ask the global API; set once per process
    # capture_parameters stays off: parameters may hold personal data; statements are ours and hold none
    PsycopgInstrumentor().instrument(tracer_provider=provider, enable_commenter=False)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _provider = provider


def uninstall() -> None:
    """Undo `install` (tests)."""
    global _provider
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    PsycopgInstrumentor().uninstrument()
    HTTPXClientInstrumentor().uninstrument()
    _provider = None


def instrument(app: Starlette) -> None:
    """A server span per request of `app` (continuing an incoming `traceparent`), when tracing is on. Call
    after the app's other middleware is added: this one goes outermost, so the span covers them too."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    # the ASGI send/receive events would add two spans per request that say nothing the server span does not
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=_provider, exclude_spans=["receive", "send"])


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[None]:
    """A span of our own around a unit of work (a webhook delivery); nothing at all when tracing is off."""
    if _provider is None:
        yield
        return
    tracer = _provider.get_tracer("paygate")
    with tracer.start_as_current_span(name, attributes=attributes):
        yield


def current_ids() -> dict[str, str]:
    """{"trace_id", "span_id"} of the current span (hex, as in `traceparent`), or {} when there is none."""
    if _provider is None:
        return {}
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def add_trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current trace and span id on every log line written inside a span."""
    if _provider is not None:
        event.update(current_ids())
    return event


class TraceparentLog:
    """ASGI middleware of the bank simulator: logs the `traceparent` each request arrived with, so that a
    test (or an operator) can see the gateway's trace id reach the acquirer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"traceparent":
                    import structlog

                    structlog.get_logger("paygate.bank").info(
                        "bank_request_traced", method=scope["method"], path=scope["path"],
                        traceparent=value.decode("latin-1"))
                    break
        await self.app(scope, receive, send)
