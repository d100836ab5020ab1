"""OpenTelemetry setup and trace propagation through Kafka headers (W3C traceparent)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from v2v_platform.envelope.headers import HEADER_TRACEPARENT, HEADER_TRACESTATE

_PROPAGATOR = TraceContextTextMapPropagator()
KafkaHeaders = Sequence[tuple[str, bytes]]


def setup_tracing(service_name: str, exporter: SpanExporter | str | None = None) -> TracerProvider:
    """Install a tracer provider for this process.

    `exporter` is a SpanExporter (tests pass an InMemorySpanExporter), "console", or None/"none"
    (spans are created for propagation but not exported).
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current  # OpenTelemetry allows one provider per process: extend it
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if isinstance(exporter, SpanExporter):
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    elif exporter not in (None, "none"):
        raise ValueError(
            f"unknown span exporter {exporter!r}; expected 'otlp', 'console' or 'none'"
        )
    if provider is not current:
        trace.set_tracer_provider(provider)
    propagate.set_global_textmap(_PROPAGATOR)
    return provider


def _otlp_exporter() -> SpanExporter:
    """OTLP over HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


_TRACERS: dict[str, trace.Tracer] = {}


def tracer(name: str = "v2v") -> trace.Tracer:
    """The process's tracer of `name`, made once (OpenTelemetry builds a new one on every
    `get_tracer`: a scope, a tracer, a lock, ~20 us, on every span of every command). Made
    before `setup_tracing`, it is OpenTelemetry's proxy, which follows the provider set later."""
    found = _TRACERS.get(name)
    if found is None:
        found = _TRACERS.setdefault(name, trace.get_tracer(name))
    return found


def current_traceparent() -> str | None:
    """The active span's W3C traceparent, to store with an event recorded now."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(HEADER_TRACEPARENT)


def context_from_traceparent(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({HEADER_TRACEPARENT: traceparent})


def inject_headers() -> list[tuple[str, bytes]]:
    """Kafka headers carrying the active span's context."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [
        (k, v.encode()) for k, v in carrier.items() if k in (HEADER_TRACEPARENT, HEADER_TRACESTATE)
    ]


def extract_context(headers: KafkaHeaders | None) -> otel_context.Context:
    carrier = {
        k: v.decode("ascii", "replace")
        for k, v in (headers or ())
        if k in (HEADER_TRACEPARENT, HEADER_TRACESTATE) and v is not None
    }
    return _PROPAGATOR.extract(carrier)


@contextmanager
def producer_span(topic: str, traceparent: str | None = None) -> Iterator[Span]:
    """A PRODUCER span for one publish, child of the event's recorded trace when known."""
    parent = context_from_traceparent(traceparent)
    with tracer().start_as_current_span(
        f"{topic} publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
    ) as span:
        yield span


@contextmanager
def consumer_span(topic: str, headers: KafkaHeaders | None) -> Iterator[Span]:
    """A CONSUMER span for one processed record, continuing the producer's trace."""
    with tracer().start_as_current_span(
        f"{topic} process",
        context=extract_context(headers),
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.source.name": topic},
    ) as span:
        yield span


@contextmanager
def server_span(name: str, carrier: Mapping[str, str]) -> Iterator[Span]:
    """A SERVER span for one incoming request (HTTP or gRPC), continuing the caller's trace
    when its W3C `traceparent` is in `carrier` (HTTP headers or gRPC metadata)."""
    parent = _PROPAGATOR.extract({k.lower(): v for k, v in carrier.items()})
    with tracer().start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as span:
        yield span


@contextmanager
def store_write_span(application: str, aggregates: int) -> Iterator[Span]:
    """An INTERNAL span around one atomic event store write (the outbox is that store)."""
    with tracer().start_as_current_span(
        f"{application} event store write",
        kind=SpanKind.INTERNAL,
        attributes={"db.operation.name": "insert events", "v2v.aggregates": aggregates},
    ) as span:
        yield span
