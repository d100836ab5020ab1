"""The process's tracers are made once (issue 18 item 2: every command opens spans; building
a tracer per span cost ~20 us each), and a tracer made before tracing is set up still records
into the provider set up later."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry import trace

from v2v_platform import telemetry


def test_a_tracer_is_made_once_per_name(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    get_tracer = trace.get_tracer

    def counted(name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        made.append(name)
        return get_tracer(name, *args, **kwargs)

    monkeypatch.setattr(trace, "get_tracer", counted)
    first = telemetry.tracer("v2v.test-once")
    for _ in range(3):
        assert telemetry.tracer("v2v.test-once") is first
        with telemetry.store_write_span("App", 1):
            pass
    assert made.count("v2v.test-once") == 1
    assert made.count("v2v") <= 1  # the default tracer: made at most once (maybe earlier)
    assert telemetry.tracer() is telemetry.tracer() is not first


def test_a_tracer_made_before_setup_records_into_the_provider_set_up_later() -> None:
    script = textwrap.dedent(
        """
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from v2v_platform import telemetry

        early = telemetry.tracer()
        exporter = InMemorySpanExporter()
        telemetry.setup_tracing("test", exporter)
        assert telemetry.tracer() is early
        with telemetry.store_write_span("App", 1):
            pass
        with early.start_as_current_span("direct"):
            pass
        print(sorted(s.name for s in exporter.get_finished_spans()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['App event store write', 'direct']"
