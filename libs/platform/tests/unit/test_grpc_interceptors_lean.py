"""The gRPC interceptors do their per-method work once (issue 18 item 4) and keep what they
did per call: one SERVER span per unary call continuing the caller's `traceparent`, the
handler inside it, authorization, and one access log line per call."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from v2v_platform import telemetry
from v2v_platform.auth import (
    AuthInterceptor,
    Role,
    SiteTlsFiles,
    channel_credentials,
    secure_channel,
)
from v2v_platform.auth.identity import current_caller
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.grpc_service import RunningServer, TracingInterceptor, build_server

SAY = "/v2v.test.Echo/Say"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TIMEOUT = 5


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("test", exporter)
    return exporter


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("lean") / "pki"
    specs = ["HOSP-A:collection", "GMP-1:manufacturing"]
    init_pki(directory, [parse_site_spec(spec) for spec in specs])
    return directory


def _say(request: bytes, context: Any) -> bytes:
    span = trace.get_current_span().get_span_context()
    return f"{current_caller().site_id} {span.trace_id:032x}".encode()


@pytest.fixture(scope="module")
def server(pki: Path, spans: InMemorySpanExporter) -> Iterator[RunningServer]:
    handler = grpc.method_handlers_generic_handler(
        "v2v.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(_say)}
    )
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "GMP-1"),
        required_roles={SAY: frozenset({Role.COLLECTION})},
        register=lambda s: s.add_generic_rpc_handlers((handler,)),
        service_names=["v2v.test.Echo"],
    )
    yield running
    running.stop(0)


def say(pki: Path, server: RunningServer, site: str, metadata: Any = ()) -> Any:
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    with secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
        try:
            return channel.unary_unary(SAY)(b"hi", metadata=metadata, timeout=TIMEOUT)
        except grpc.RpcError as error:
            return error.code()


def server_spans(spans: InMemorySpanExporter) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.name == f"gRPC {SAY}"]


def test_each_call_has_its_server_span_continuing_the_callers_trace(
    pki: Path, server: RunningServer, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    traceparent = f"00-{TRACE_ID}-{CALLER_SPAN}-01"

    continued = say(pki, server, "HOSP-A", (("traceparent", traceparent),))
    fresh = say(pki, server, "HOSP-A")
    again = say(pki, server, "HOSP-A", (("traceparent", traceparent),))

    assert continued == again == f"HOSP-A {TRACE_ID}".encode()
    assert fresh.startswith(b"HOSP-A ") and TRACE_ID.encode() not in fresh
    first, second, third = server_spans(spans)
    assert {first.kind, second.kind, third.kind} == {SpanKind.SERVER}
    assert f"{first.context.trace_id:032x}" == f"{third.context.trace_id:032x}" == TRACE_ID
    assert first.parent is not None and f"{first.parent.span_id:016x}" == CALLER_SPAN
    assert second.parent is None and f"{second.context.trace_id:032x}" in fresh.decode()
    assert first.context.span_id != third.context.span_id


def test_a_refused_call_is_traced_as_an_error_and_logged(
    pki: Path, server: RunningServer, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    spans.clear()
    caplog.set_level(logging.INFO, logger="v2v.access")

    assert say(pki, server, "GMP-1") == grpc.StatusCode.PERMISSION_DENIED
    assert say(pki, server, "HOSP-A").startswith(b"HOSP-A ")
    assert say(pki, server, "GMP-1") == grpc.StatusCode.PERMISSION_DENIED

    refused, served, refused_again = server_spans(spans)
    assert refused.status.status_code == refused_again.status.status_code == StatusCode.ERROR
    assert served.status.status_code != StatusCode.ERROR
    lines = [r.getMessage() for r in caplog.records if r.name == "v2v.access"]
    assert lines == [
        f"grpc site=GMP-1 roles=- {SAY} coi=- outcome=PERMISSION_DENIED",
        f"grpc site=HOSP-A roles=collection {SAY} coi=- outcome=OK",
        f"grpc site=GMP-1 roles=- {SAY} coi=- outcome=PERMISSION_DENIED",
    ]


def test_the_wrapped_handlers_are_built_once_per_method() -> None:
    registered = grpc.unary_unary_rpc_method_handler(_say)
    other = grpc.unary_unary_rpc_method_handler(_say)
    details = SimpleNamespace(method=SAY, invocation_metadata=())
    auth = AuthInterceptor({SAY: frozenset({Role.COLLECTION})})
    tracing = TracingInterceptor()

    wrapped = [auth.intercept_service(lambda _: registered, details) for _ in range(3)]
    traced = [tracing.intercept_service(lambda _: wrapped[0], details) for _ in range(3)]
    replaced = auth.intercept_service(lambda _: other, details)  # a handler registered anew

    assert wrapped[0] is wrapped[1] is wrapped[2] and wrapped[0] is not registered
    assert traced[0] is traced[1] is traced[2]
    assert replaced is not wrapped[0] and replaced.unary_unary is not None
    assert auth.intercept_service(lambda _: None, details) is None
