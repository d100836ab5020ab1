"""Outbox relay on in-memory persistence: ordering, chaining, crash safety, refusals."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from eventsourcing.domain import Aggregate, event

from v2v_platform import telemetry
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.envelope.headers import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION
from v2v_platform.relay import ChainBroken, InMemoryRelayState, OutboundRecord, OutboxRelay
from v2v_platform.relay.publisher import PublishFailed
from v2v_platform.testing.outbox_app import SPEC, ChainApp
from v2v_testkit.golden import envelope as golden


@pytest.fixture(autouse=True, scope="module")
def tracing() -> None:
    telemetry.setup_tracing("test-relay")


COIS = ["CHA123425000017", "CHA123425000025", "CHA123425000033"]


class RecordingBroker:
    """Stands in for Kafka in unit tests: acknowledges, or fails the Nth publish call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.records: list[OutboundRecord] = []
        self.calls = 0
        self.fail_on_call = fail_on_call

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            self.records.extend(records[: len(records) // 2])  # half reached the broker
            raise PublishFailed("broker went away")
        self.records.extend(records)


def _app_with_history(notes_per_coi: int = 4) -> ChainApp:
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for coi in COIS:
        app.start(coi)
    for seq in range(notes_per_coi):
        for coi in COIS:
            app.note(coi, seq)
    return app


def _relay(
    app: ChainApp, state: InMemoryRelayState, broker: RecordingBroker, page: int = 4
) -> OutboxRelay:
    return OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=SPEC.translator,
        signer=golden.golden_signer(),
        state=state,
        publisher=broker,
        topic="v2v.intake.events.v1",
        page_size=page,
    )


def _verify(records: list[OutboundRecord]) -> ChainVerifier:
    verifier = ChainVerifier(golden.golden_key_ring())
    for offset, record in enumerate(records):
        assert verifier.feed_bytes(record.value, Location(record.topic, 0, offset)) == []
    return verifier


def test_publishes_every_event_keyed_by_coi_with_headers() -> None:
    app = _app_with_history()
    broker = RecordingBroker()
    published = _relay(app, InMemoryRelayState(), broker).publish_pending()
    assert published == len(broker.records) == 15
    for record in broker.records:
        envelope = decode(record.value)
        assert record.key == envelope.coi.encode()
        headers = dict(record.headers)
        assert headers[HEADER_EVENT_ID] == envelope.event_id.encode()
        assert headers[HEADER_EVENT_TYPE] == b"google.protobuf.Struct"
        assert headers[HEADER_SCHEMA_VERSION] == b"1"
        assert headers["traceparent"].startswith(b"00-")
    verifier = _verify(broker.records)
    assert verifier.aggregates == 3 and verifier.duplicates_seen == 0


def test_position_advances_only_after_acknowledgement_and_republish_is_identical() -> None:
    app = _app_with_history()
    state = InMemoryRelayState()
    broker = RecordingBroker(fail_on_call=2)
    relay = _relay(app, state, broker)
    relay.publish_page()
    position_after_first_page = state.position()
    with pytest.raises(PublishFailed):
        relay.publish_page()
    assert state.position() == position_after_first_page
    relay.publish_pending()
    verifier = _verify(broker.records)
    assert verifier.envelopes_seen == 15 + 2  # the half page that reached the broker, again
    assert verifier.duplicates_seen == 2


def test_restart_resumes_from_the_recorded_position_and_chain_heads() -> None:
    app = _app_with_history()
    state = InMemoryRelayState()
    broker = RecordingBroker()
    _relay(app, state, broker).publish_page()
    for coi in COIS:
        app.note(coi, 99)
    _relay(app, state, broker).publish_pending()  # a new relay instance, same durable state
    assert _verify(broker.records).envelopes_seen == 18


def test_per_coi_order_follows_the_notification_log() -> None:
    app = _app_with_history(notes_per_coi=6)
    broker = RecordingBroker()
    _relay(app, InMemoryRelayState(), broker, page=5).publish_pending()
    for coi in COIS:
        versions = [
            decode(r.value).aggregate_version for r in broker.records if r.key == coi.encode()
        ]
        assert versions == sorted(versions) == list(range(1, 8))


class Orphan(Aggregate):
    @event("Made")
    def __init__(self, coi: str) -> None:
        self.coi = coi


def test_an_event_without_payload_mapping_stops_the_relay() -> None:
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.save(Orphan(coi=COIS[0]))
    relay = _relay(app, InMemoryRelayState(), RecordingBroker())
    with pytest.raises(ChainBroken, match="no payload mapping"):
        relay.publish_pending()


def test_a_head_that_does_not_precede_the_next_version_stops_the_relay() -> None:
    app = _app_with_history(notes_per_coi=1)
    state = InMemoryRelayState()
    relay = _relay(app, state, RecordingBroker(), page=100)
    relay.publish_pending()
    state.advance(0, {})  # position lost but heads kept: versions would be re-chained wrongly
    with pytest.raises(ChainBroken, match="follows recorded head"):
        relay.publish_page()


def test_translator_refuses_events_without_attribution() -> None:
    translator = AttributedEventTranslator({Orphan.Made: lambda e: golden.golden_payload()})
    made = Orphan(coi=COIS[0]).collect_events()[0]
    with pytest.raises(ValueError, match="has no 'actor' attribute"):
        translator.translate(made)


def test_run_waits_out_a_broker_outage_and_loses_nothing() -> None:
    app = _app_with_history()
    broker = RecordingBroker(fail_on_call=1)
    relay = _relay(app, InMemoryRelayState(), broker)
    stop = threading.Event()
    worker = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_wait_s": 0.01})
    worker.start()
    deadline = time.monotonic() + 10
    while relay.published_total < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    verifier = _verify(broker.records)
    assert relay.published_total == 15
    assert verifier.envelopes_seen - verifier.duplicates_seen == 15


def test_run_stops_on_a_broken_chain() -> None:
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.save(Orphan(coi=COIS[0]))
    relay = _relay(app, InMemoryRelayState(), RecordingBroker())
    with pytest.raises(ChainBroken):
        relay.run(threading.Event())


def test_translator_refuses_events_without_a_valid_coi() -> None:
    translator = AttributedEventTranslator({Orphan.Made: lambda e: golden.golden_payload()})
    made = Orphan(coi="").collect_events()[0]
    with pytest.raises(ValueError, match="cannot be published without a valid COI"):
        translator.translate(made)
