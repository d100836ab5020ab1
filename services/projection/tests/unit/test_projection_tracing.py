"""One CONSUMER span per consumed batch continues the first traced record's trace and links
the other traced records (OpenTelemetry's batch pattern)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from v2v_platform import telemetry
from v2v_projection.consumer import batch_span, traced_headers

FIRST = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SECOND = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("projection-test", exporter)
    yield exporter
    exporter.clear()


def record(traceparent: str | None) -> SimpleNamespace:
    headers = [("traceparent", traceparent.encode())] if traceparent else []
    return SimpleNamespace(headers=headers)


def test_a_batch_span_continues_the_first_trace_and_links_the_others(
    spans: InMemorySpanExporter,
) -> None:
    batch = [record(None), record(FIRST), record(SECOND)]

    with batch_span(traced_headers(batch, 128), len(batch)):
        pass

    (span,) = [s for s in spans.get_finished_spans() if s.name == "v2v projection process"]
    assert span.kind == SpanKind.CONSUMER
    assert f"{span.context.trace_id:032x}" == FIRST.split("-")[1]
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [SECOND.split("-")[1]]
    assert span.attributes is not None and span.attributes["messaging.batch.message_count"] == 3


def test_a_batch_without_trace_context_gets_a_root_span(spans: InMemorySpanExporter) -> None:
    with batch_span(traced_headers([record(None)], 128), 1):
        pass

    (span,) = [s for s in spans.get_finished_spans() if s.name == "v2v projection process"]
    assert span.parent is None and not span.links
