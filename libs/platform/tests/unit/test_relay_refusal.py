"""An event the broker refuses for good stops the relay with a clear error and makes the
service unhealthy; a broker outage is waited out, counting as no progress past the bound."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct
from kafka.errors import (
    BrokerNotAvailableError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    OutOfOrderSequenceNumberError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)

from v2v_platform import telemetry
from v2v_platform.envelope import decode
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.relay import (
    InMemoryRelayState,
    OutboundRecord,
    OutboxRelay,
    PublishFailed,
    PublishingStopped,
    PublishRefused,
)
from v2v_platform.relay.publisher import refused_for_good
from v2v_platform.service_runtime import ServiceRuntime
from v2v_platform.testing.outbox_app import ACTOR, SITE_ID, Chain, ChainApp
from v2v_platform.testing.producing import eventually
from v2v_testkit.golden import envelope as golden

TOPIC = "v2v.intake.events.v1"
BROKER_MAX_BYTES = 1_048_588  # Kafka's default message.max.bytes
TOO_LARGE = (
    "The request included a message larger than the max message size the server will accept."
)
COI = "CHA123425000017"
OTHER_COI = "CHA123425000025"


@pytest.fixture(autouse=True, scope="module")
def tracing() -> None:
    telemetry.setup_tracing("test-relay-refusal")


class SizeLimitedBroker:
    """Stands in for Kafka: acknowledges records up to the broker's maximum message size,
    refuses a larger one for good (as the broker answers MESSAGE_TOO_LARGE), and fails every
    call while `down` is set."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []
        self.refused: list[OutboundRecord] = []
        self.down = threading.Event()

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        if self.down.is_set():
            raise PublishFailed("broker went away")
        for record in records:
            if len(record.value) > BROKER_MAX_BYTES:
                self.refused.append(record)
                raise PublishRefused(record, MessageSizeTooLargeError(TOO_LARGE))
            self.records.append(record)


def _payload(event: Any) -> Struct:
    payload = Struct()
    payload.update(
        {"kind": type(event).__name__, "seq": getattr(event, "seq", 0), "note": event.reason}
        if isinstance(event, Chain.Noted)
        else {"kind": type(event).__name__}
    )
    return payload


TRANSLATOR = AttributedEventTranslator({Chain.Started: _payload, Chain.Noted: _payload})


def _note(app: ChainApp, coi: str, seq: int, text: str = "") -> None:
    chain: Chain = app.repository.get(Chain.create_id(coi))
    chain.note(coi=coi, actor=ACTOR, site_id=SITE_ID, reason=text, seq=seq)
    app.save(chain)


def _app_with_an_oversized_event() -> ChainApp:
    """COI: started (v1), a note (v2), a 1.2 MB note (v3), a note (v4); then OTHER_COI."""
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.start(COI)
    _note(app, COI, 1)
    _note(app, COI, 2, "x" * 1_200_000)
    _note(app, COI, 3)
    app.start(OTHER_COI)
    return app


def _relay(app: ChainApp, broker: SizeLimitedBroker, state: InMemoryRelayState) -> OutboxRelay:
    return OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=TRANSLATOR,
        signer=golden.golden_signer(),
        state=state,
        publisher=broker,
        topic=TOPIC,
        page_size=2,
    )


def _refusal_of(broker: SizeLimitedBroker) -> str:
    refused = broker.refused[0]
    envelope = decode(refused.value)
    return (
        f"the broker refused google.protobuf.Struct of {envelope.aggregate_type}"
        f" {envelope.aggregate_id} version 3 ({len(refused.value)} bytes) for good:"
        f" [Error 10] MessageSizeTooLargeError: {TOO_LARGE}; the relay publishes nothing more"
        " until it is resolved"
    )


def test_an_event_the_broker_refuses_for_good_stops_the_relay_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = SizeLimitedBroker()
    state = InMemoryRelayState()
    relay = _relay(_app_with_an_oversized_event(), broker, state)
    with (
        caplog.at_level(logging.ERROR, logger="v2v_platform.relay.relay"),
        pytest.raises(PublishingStopped) as stopped,
    ):
        relay.run(threading.Event(), idle_wait_s=0.01)  # returns: no retry loop
    reason = _refusal_of(broker)
    assert str(stopped.value) == reason
    assert len(broker.refused) == 1
    assert [decode(r.value).aggregate_version for r in broker.records] == [1, 2]
    assert state.position() == 2  # the refused event and everything after it stay unpublished
    assert [r.getMessage() for r in caplog.records] == [f"relay to {TOPIC} stopped: {reason}"]
    assert caplog.records[0].levelno == logging.ERROR


def test_a_service_whose_relay_stopped_is_neither_ready_nor_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracebacks: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", tracebacks.append)
    broker = SizeLimitedBroker()
    relay = _relay(_app_with_an_oversized_event(), broker, InMemoryRelayState())
    runtime = ServiceRuntime("intake", "HOSP-A", tmp_path)
    try:
        runtime.run_part("relay", lambda beat: relay.run(runtime.stop_event, heartbeat=beat))
        eventually(lambda: not runtime.health.report().live, "the relay to stop")
        report = runtime.health.report()
        assert report.reasons == [f"relay stopped: {_refusal_of(broker)}"]
        assert not report.ready
        assert tracebacks == []  # the relay said why in its ERROR log; no stack trace
    finally:
        runtime.stop()


def test_a_broker_outage_is_waited_out_and_counts_as_no_progress(tmp_path: Path) -> None:
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.start(COI)
    broker = SizeLimitedBroker()
    broker.down.set()
    relay = _relay(app, broker, InMemoryRelayState())
    runtime = ServiceRuntime("intake", "HOSP-A", tmp_path, stall_after_s=0.3)
    try:
        runtime.run_part(
            "relay",
            lambda beat: relay.run(
                runtime.stop_event, idle_wait_s=0.01, max_backoff_s=0.2, heartbeat=beat
            ),
        )
        eventually(lambda: not runtime.health.report().ready, "the outage to show")
        report = runtime.health.report()
        assert report.live
        assert report.reasons[0].startswith("relay: no progress for ")
        assert report.reasons[0].endswith(" s: PublishFailed: broker went away")
        broker.down.clear()
        eventually(lambda: runtime.health.report().ready, "the relay to progress again")
        eventually(lambda: len(broker.records) == 1, "the waiting event to be published")
    finally:
        runtime.stop()


@pytest.mark.parametrize(
    ("error", "final"),
    [
        (MessageSizeTooLargeError(TOO_LARGE), True),
        (RecordListTooLargeError(), True),
        (TopicAuthorizationFailedError(), True),
        (NotEnoughReplicasError(), False),  # retriable
        (KafkaTimeoutError(), False),  # the producer's own timeout
        (KafkaConnectionError(), False),
        (BrokerNotAvailableError(), False),  # non-retriable in kafka-python, yet passing
        (OutOfOrderSequenceNumberError(), False),  # the producer's state, not the record
        (ValueError("not a Kafka error"), False),
    ],
)
def test_which_errors_are_refusals_for_good(error: BaseException, final: bool) -> None:
    assert refused_for_good(error) is final
