"""Health tells the truth, against the real broker (issue 12, proof (d) and part 4's relay):

- a consumer thread killed inside a running service turns gRPC health NOT_SERVING and GET
  /ready 503, naming the consumer and its error;
- an event larger than the broker's maximum message size stops the relay with an ERROR naming
  the event and its size, and NOT_SERVING with that reason, instead of retrying forever;
- the publisher tells a refusal for good from a failure it can wait out, on both of
  kafka-python's paths (refused by the producer before sending, refused by the broker).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.protobuf.struct_pb2 import Struct
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka.errors import MessageSizeTooLargeError

from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import PublishingServiceSettings, load_settings
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.health import LIVENESS_SERVICE
from v2v_platform.healthcheck import check
from v2v_platform.ids import issue_coi
from v2v_platform.relay import KafkaPublisher, OutboundRecord, PublishRefused, ensure_topics
from v2v_platform.relay.process import RelaySpec
from v2v_platform.service_runtime import RuntimeService
from v2v_platform.testing.kafka_topics import read_topic
from v2v_platform.testing.outbox_app import ACTOR, SITE_ID
from v2v_platform.testing.producing import eventually

pytestmark = pytest.mark.integration

TOPIC = "v2v.intake.events.v1"
SERVICE_NAME = "v2v.demo.v1.DemoService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
BROKER_MAX_BYTES = 1_048_588  # the broker's message.max.bytes (Kafka's default)


class Bulky(Aggregate):
    """An aggregate whose first event is as large as the caller likes."""

    class Recorded(Aggregate.Created):
        coi: str
        actor: dict[str, str]
        site_id: str
        blob: str

    @event(Recorded)
    def __init__(self, coi: str, actor: dict[str, str], site_id: str, blob: str) -> None:
        self.coi = coi


class BulkyApp(Application[UUID]):
    def record(self, coi: str, blob: str) -> None:
        self.save(Bulky(coi=coi, actor=ACTOR, site_id=SITE_ID, blob=blob))


def _payload(recorded: Any) -> Struct:
    payload = Struct()
    payload.update({"blob": recorded.blob})
    return payload


BULKY_SPEC = RelaySpec(
    context="intake",
    application=BulkyApp,
    translator=AttributedEventTranslator({Bulky.Recorded: _payload}),
)


class DemoSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:0"
    http_port: int = 0


demo_api = SimpleNamespace(
    SERVICE_NAME=SERVICE_NAME,
    REQUIRED_ROLES={f"/{SERVICE_NAME}/Do": frozenset({Role.COLLECTION})},
    register=lambda app: lambda server: None,
)


@dataclass
class DemoService(RuntimeService):
    context = "intake"
    relay_spec = BULKY_SPEC
    api = demo_api
    settings: DemoSettings
    app: Any
    http_app: FastAPI = field(default_factory=FastAPI)


class Nothing:
    """A projection that keeps nothing (what it would apply does not matter here)."""

    def __init__(self, placeholder_style: Any) -> None:
        self.placeholder_style = placeholder_style

    def __call__(self, unit_of_work: Any, delivered: Any) -> None:
        return None


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(f"{SITE_ID}:collection")])
    return directory


@pytest.fixture
def service(pki: Path, tmp_path: Path, kafka_bootstrap: str) -> Iterator[DemoService]:
    settings = load_settings(
        DemoSettings,
        site_id=SITE_ID,
        pki_dir=pki,
        kafka_bootstrap=kafka_bootstrap,
        sqlite_path=tmp_path / "events.sqlite",
    )
    running = DemoService(settings, BulkyApp(env=settings.event_store.eventsourcing_env()))
    yield running
    running.stop()


def grpc_status(pki: Path, service: DemoService, name: str = "") -> int:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, SITE_ID))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    return int(reply.status)


def health_check(pki: Path, service: DemoService) -> tuple[bool, str]:
    assert service.grpc is not None
    target = f"127.0.0.1:{service.grpc.port}"
    healthy, message = check(target, SiteTlsFiles.for_site(pki, SITE_ID))
    return healthy, message.removeprefix(f"{target}: ")


def a_coi() -> str:
    fin = f"{random.choice('ABCDEFGHJKLMN')}{random.randrange(10_000):04d}"
    return str(issue_coi(fin, 25, random.randrange(1, 99_999)))


def test_a_consumer_thread_killed_inside_a_running_service_turns_its_health_unhealthy(
    pki: Path, service: DemoService, monkeypatch: pytest.MonkeyPatch
) -> None:
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    service.start_grpc()
    service.start_relay()
    consumer = service.start_projection(
        "facts",
        contexts=["manufacturing", "release"],
        projection=Nothing,
        consumer_name="health-test-facts",
        sqlite_path=service.settings.side_sqlite_path("health-test-facts"),
        create_tables=lambda connection: None,
        group_id=f"health-test-{uuid4()}",
    )
    http = TestClient(service.http_app)
    assert health_check(pki, service) == (True, "SERVING")
    assert http.get("/ready").json() == {"status": "ready"}

    def poll_on_a_broken_store(timeout_ms: int = 500) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(consumer, "poll_once", poll_on_a_broken_store)
    reason = "facts-consumer stopped: DatabaseError: database disk image is malformed"
    eventually(lambda: not health_check(pki, service)[0], "gRPC health to turn NOT_SERVING")
    assert health_check(pki, service) == (False, f"NOT_SERVING: {reason}")
    assert grpc_status(pki, service, SERVICE_NAME) == NOT_SERVING
    assert grpc_status(pki, service, LIVENESS_SERVICE) == NOT_SERVING
    ready = http.get("/ready")
    assert (ready.status_code, ready.json()["reasons"]) == (503, [reason])
    assert http.get("/live").status_code == 503
    assert [type(error) for error in died] == [sqlite3.DatabaseError]


def test_an_event_the_broker_refuses_stops_the_relay_and_the_service_says_why(
    pki: Path, service: DemoService, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    big = a_coi()
    service.start_grpc()
    with caplog.at_level(logging.ERROR, logger="v2v_platform.relay.relay"):
        relay = service.start_relay()
        service.app.record(big, "x" * 1_500_000)  # the envelope is larger than 1 MiB
        eventually(lambda: not health_check(pki, service)[0], "gRPC health to turn NOT_SERVING")
    _, message = health_check(pki, service)
    assert message.startswith("NOT_SERVING: relay stopped: the broker refused google.protobuf")
    assert ".Struct of Bulky " in message
    assert " version 1 (" in message
    assert "for good: [Error 10] MessageSizeTooLargeError: The server has a configurable" in message
    size = int(message.split(" version 1 (", 1)[1].split(" bytes)", 1)[0])
    assert size > BROKER_MAX_BYTES
    reason = message.removeprefix("NOT_SERVING: ")
    assert [r.getMessage() for r in caplog.records if r.name == "v2v_platform.relay.relay"] == [
        f"relay to {TOPIC} stopped: {reason.removeprefix('relay stopped: ')}"
    ]
    assert grpc_status(pki, service, LIVENESS_SERVICE) == NOT_SERVING
    ready = TestClient(service.http_app).get("/ready")
    assert (ready.status_code, ready.json()["reasons"]) == (503, [reason])
    assert relay.state.position() == 0
    assert read_topic(kafka_bootstrap, TOPIC, lambda r: r.key == big.encode()) == []
    [thread] = [t for t in service.runtime._threads if t.name == "intake-relay"]
    assert not thread.is_alive()  # stopped: no retry loop


def _refused(publisher: KafkaPublisher, record: OutboundRecord) -> PublishRefused:
    with pytest.raises(PublishRefused) as refused:
        publisher.publish([record])
    return refused.value


def test_the_publisher_says_which_record_the_broker_or_the_producer_refused_for_good(
    kafka_bootstrap: str,
) -> None:
    topic = f"v2v-test-publisher-{uuid4()}"
    ensure_topics(kafka_bootstrap, [topic], 1)
    small, again = (OutboundRecord(topic, b"k", value, []) for value in (b"small", b"again"))
    oversized = OutboundRecord(topic, b"k", b"x" * 1_500_000, [])  # refused by the broker
    huge = OutboundRecord(topic, b"k", b"x" * 5 * 1024 * 1024, [])  # by the producer: > 4 MiB
    first = KafkaPublisher(kafka_bootstrap, client_id="v2v-test-publisher")
    try:
        first.publish([small])
        refused = _refused(first, oversized)
        assert refused.record is oversized
        assert isinstance(refused.error, MessageSizeTooLargeError)
        # kafka-python's idempotent producer is then in a fatal state: every later record is
        # refused too, so skipping the refused event could not let the relay go on anyway
        assert _refused(first, again).record is again
    finally:
        first.close()
    second = KafkaPublisher(kafka_bootstrap, client_id="v2v-test-publisher")
    try:
        refused = _refused(second, huge)
        assert refused.record is huge
        assert isinstance(refused.error, MessageSizeTooLargeError)
        second.publish([again])  # refused before sending: this producer goes on
    finally:
        second.close()
    assert [r.value for _, r in read_topic(kafka_bootstrap, topic)] == [b"small", b"again"]
