"""Trace context travels from the recording request through Kafka headers to the consumer."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from v2v_platform import telemetry


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("test", exporter)
    return exporter


def test_producer_and_consumer_spans_share_the_request_trace(spans: InMemorySpanExporter) -> None:
    spans.clear()
    with telemetry.tracer().start_as_current_span("POST /scan") as request:
        recorded = telemetry.current_traceparent()
    assert recorded is not None
    with telemetry.producer_span("v2v.logistics.events.v1", recorded):
        headers = telemetry.inject_headers()
    with telemetry.consumer_span("v2v.logistics.events.v1", headers):
        pass
    finished = {s.name: s for s in spans.get_finished_spans()}
    trace_id = request.get_span_context().trace_id
    producer = finished["v2v.logistics.events.v1 publish"]
    consumer = finished["v2v.logistics.events.v1 process"]
    assert producer.context.trace_id == consumer.context.trace_id == trace_id
    assert producer.kind == SpanKind.PRODUCER and consumer.kind == SpanKind.CONSUMER
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id


def test_missing_headers_start_a_new_trace(spans: InMemorySpanExporter) -> None:
    with telemetry.consumer_span("t", None) as span:
        assert span.get_span_context().is_valid


def test_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown span exporter 'zipkin'"):
        telemetry.setup_tracing("x", "zipkin")


def test_otlp_exporter_is_configured_from_the_standard_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from v2v_platform.telemetry import _otlp_exporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    exporter = _otlp_exporter()
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://collector:4318/v1/traces"


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_http_request_continues_the_callers_trace_into_the_event_store_write(
    spans: InMemorySpanExporter,
) -> None:
    from fastapi.testclient import TestClient

    from v2v_platform.http_api import create_app
    from v2v_platform.traced_application import TracedApplication

    store = TracedApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app = create_app("t", "1")

    @app.post("/v1/things")
    def record() -> dict[str, str | None]:
        from eventsourcing.domain import Aggregate

        store.save(Aggregate())
        return {"recorded_traceparent": telemetry.current_traceparent()}

    spans.clear()
    caller = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    reply = TestClient(app).post("/v1/things", headers={"traceparent": caller}).json()
    finished = {s.name: s for s in spans.get_finished_spans()}
    request = finished["POST /v1/things"]  # FastAPI's own server span
    write = finished["TracedApplication event store write"]
    assert request.kind == SpanKind.SERVER
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert write.context.trace_id == request.context.trace_id
    assert reply["recorded_traceparent"].split("-")[1] == TRACE_ID
