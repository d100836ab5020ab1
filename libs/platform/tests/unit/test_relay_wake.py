"""Wake-on-write relay (issue 18 item 1): a save in the same process wakes the relay (no fixed
idle sleep), a write nobody signals is still found by the bounded fallback poll, the relay's
settings select either, and each published page is one OpenTelemetry span whose records keep
their own trace context in their Kafka headers."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from google.protobuf.struct_pb2 import Struct
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from v2v_platform import telemetry
from v2v_platform.config import ConfigurationError, load_settings
from v2v_platform.envelope.from_domain import AttributedEventTranslator, EventTranslator
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay
from v2v_platform.relay.process import RelaySettings, relay_wake
from v2v_platform.relay.wake import WakeSignal, saved
from v2v_platform.testing.outbox_app import ACTOR, NAMESPACE, SITE_ID, SPEC, ChainApp
from v2v_platform.testing.producing import eventually
from v2v_platform.traced_application import TracedApplication
from v2v_testkit.golden import envelope as golden

COIS = ["CHA123425000017", "CHA123425000025", "CHA123425000033"]
NEVER_S = 3600.0  # a fallback poll this test never waits out


class TracedChainApp(TracedApplication, ChainApp):
    """The test application, saving through the platform kernel's save (as services do)."""

    name = "WakeTestChainApp"


class Step(Aggregate):
    """A chain whose events record the trace of the request that stored them (as services')."""

    class Started(Aggregate.Created):
        coi: str
        actor: dict[str, str]
        site_id: str
        traceparent: str | None

    class Noted(Aggregate.Event):
        coi: str
        actor: dict[str, str]
        site_id: str
        traceparent: str | None

    @staticmethod
    def create_id(coi: str) -> UUID:
        return uuid5(NAMESPACE, f"step {coi}")

    @event(Started)
    def __init__(
        self, coi: str, actor: dict[str, str], site_id: str, traceparent: str | None
    ) -> None:
        self.coi = coi

    @event(Noted)
    def note(self, coi: str, actor: dict[str, str], site_id: str, traceparent: str | None) -> None:
        pass


class StepApp(TracedApplication):
    def step(self, coi: str) -> None:
        """Start the COI's chain, or note a step on it, with the current trace recorded."""
        traceparent = telemetry.current_traceparent()
        try:
            step: Step = self.repository.get(Step.create_id(coi))
            step.note(coi=coi, actor=ACTOR, site_id=SITE_ID, traceparent=traceparent)
        except AggregateNotFoundError:
            step = Step(coi=coi, actor=ACTOR, site_id=SITE_ID, traceparent=traceparent)
        self.save(step)


def _payload(event: Any) -> Struct:
    payload = Struct()
    payload.update({"kind": type(event).__name__})
    return payload


STEP_TRANSLATOR = AttributedEventTranslator({Step.Started: _payload, Step.Noted: _payload})


class Broker:
    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records.extend(records)


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("test-relay-wake", exporter)
    yield exporter


def _relay(
    app: Any,
    broker: Broker,
    wake: WakeSignal | None,
    fallback_poll_s: float = NEVER_S,
    translator: EventTranslator = SPEC.translator,
) -> OutboxRelay:
    return OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=translator,
        signer=golden.golden_signer(),
        state=InMemoryRelayState(),
        publisher=broker,
        topic="v2v.intake.events.v1",
        wake=wake,
        fallback_poll_s=fallback_poll_s,
    )


def _running(relay: OutboxRelay, stop: threading.Event) -> threading.Thread:
    worker = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    worker.start()
    return worker


def test_a_save_in_the_same_process_wakes_the_relay_without_waiting_its_poll() -> None:
    app = TracedChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    broker = Broker()
    wake = WakeSignal(app.name)
    relay = _relay(app, broker, wake)
    stop = threading.Event()
    worker = _running(relay, stop)
    try:
        eventually(lambda: relay.published_total == 0 and not wake._event.is_set(), "idle relay")
        app.start(COIS[0])  # the relay waits for its signal; its fallback poll is an hour
        eventually(lambda: len(broker.records) == 1, "the saved event published", timeout_s=10)
        app.note(COIS[0], 1)
        eventually(lambda: len(broker.records) == 2, "the next one too", timeout_s=10)
    finally:
        stop.set()
        worker.join(timeout=5)
        wake.close()
    assert not worker.is_alive()  # a waiting relay notices `stop` without waiting its poll


def test_a_write_nobody_signals_is_published_by_the_fallback_poll() -> None:
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})  # saves signal nothing
    broker = Broker()
    wake = WakeSignal("NobodySavesHere")
    relay = _relay(app, broker, wake, fallback_poll_s=0.2)
    stop = threading.Event()
    worker = _running(relay, stop)
    try:
        app.start(COIS[1])
        eventually(lambda: len(broker.records) == 1, "the event found by the poll", timeout_s=10)
    finally:
        stop.set()
        worker.join(timeout=5)
        wake.close()


def test_saves_wake_every_relay_of_their_outbox_and_only_those() -> None:
    ours, theirs, second = WakeSignal("OutboxA"), WakeSignal("OutboxB"), WakeSignal("OutboxA")
    try:
        saved("OutboxA")
        assert ours._event.is_set() and second._event.is_set()
        assert not theirs._event.is_set()
    finally:
        for signal in (ours, theirs, second):
            signal.close()
    ours.clear()
    saved("OutboxA")  # a closed signal has left the registry
    assert not ours._event.is_set()


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> RelaySettings:
    key = tmp_path / "signing.key"
    SiteSigningKey.generate(SITE_ID).save(key)
    monkeypatch.setenv("V2V_CONTEXT", "intake")
    monkeypatch.setenv("V2V_SITE_ID", SITE_ID)
    monkeypatch.setenv("V2V_SIGNING_KEY_FILE", str(key))
    monkeypatch.setenv("V2V_KAFKA_BOOTSTRAP", "localhost:9092")
    monkeypatch.setenv("V2V_SQLITE_PATH", str(tmp_path / "events.sqlite"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(RelaySettings)


def test_settings_choose_the_fallback_poll_and_the_old_fixed_sleep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TracedChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    default = _settings(tmp_path, monkeypatch)
    assert default.relay_fallback_poll_s == 1.0 and default.relay_wake_on_write
    wake = relay_wake(app, default)
    assert wake is not None and wake.outbox == app.name
    wake.close()
    tuned = _settings(tmp_path, monkeypatch, V2V_RELAY_FALLBACK_POLL_S="0.25")
    assert tuned.relay_fallback_poll_s == 0.25
    old = _settings(tmp_path, monkeypatch, V2V_RELAY_WAKE_ON_WRITE="false")
    assert relay_wake(app, old) is None
    with pytest.raises(ConfigurationError, match="V2V_RELAY_FALLBACK_POLL_S"):
        _settings(tmp_path, monkeypatch, V2V_RELAY_FALLBACK_POLL_S="0")


def test_one_span_per_published_page_and_each_record_keeps_its_trace(
    spans: InMemorySpanExporter,
) -> None:
    app = StepApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    traces = []
    for coi in COIS[:2]:  # two requests, two traces; two events each
        with telemetry.tracer().start_as_current_span(f"POST /{coi}") as request:
            app.step(coi)
            app.step(coi)
        traces.append(request.get_span_context().trace_id)
    broker = Broker()
    spans.clear()
    published = _relay(app, broker, None, translator=STEP_TRANSLATOR).publish_page()
    assert published.published == 4
    producers = [s for s in spans.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert len(producers) == 1
    (page,) = producers
    assert page.name == "v2v.intake.events.v1 publish"
    assert page.attributes is not None and page.attributes["messaging.batch.message_count"] == 4
    assert page.context.trace_id == traces[0]
    assert [link.context.trace_id for link in page.links] == [traces[1]]
    carried = [
        int(dict(record.headers)["traceparent"].decode().split("-")[1], 16)
        for record in broker.records
    ]
    assert carried == [traces[0], traces[0], traces[1], traces[1]]
    first = dict(broker.records[0].headers)["traceparent"].decode()
    assert int(first.split("-")[2], 16) == page.context.span_id  # consumers follow the page
