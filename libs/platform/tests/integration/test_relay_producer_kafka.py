"""The relay on librdkafka (issue 18, relay >= 2x events/s), against the real broker:

- a relay publishing a backlog through librdkafka puts on its topic exactly what one
  publishing through kafka-python puts on its own: the same keys, values (byte-identical
  envelopes), headers, and partitions (the Java client's murmur2 of the COI), in order;
- the librdkafka publisher tells a refusal for good from a failure it can wait out, as the
  kafka-python one does, naming the refused record with kafka-python's error and reason: a
  record the broker refuses (larger than its message.max.bytes) and one the producer refuses
  before sending (larger than 4 MiB; that producer goes on);
- a broker it cannot reach fails the page (PublishFailed, which the relay waits out) within the
  publish timeout, and the relay's position does not move;
- the relay settings select the producer (V2V_RELAY_PRODUCER, librdkafka by default).
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from kafka.errors import MessageSizeTooLargeError

from v2v_platform.config import EventStoreSettings, load_settings
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.relay import (
    InMemoryRelayState,
    KafkaPublisher,
    OutboundRecord,
    OutboxRelay,
    PublishFailed,
    PublishRefused,
    ensure_topics,
)
from v2v_platform.relay.librdkafka import RdKafkaPublisher
from v2v_platform.relay.process import RelayProducer, RelaySettings, make_publisher
from v2v_platform.testing.kafka_topics import read_topic
from v2v_platform.testing.outbox_app import SITE_ID, SPEC, ChainApp

pytestmark = pytest.mark.integration

PARTITIONS = 6
STREAMS = 90  # 4 events each: 360 events, pages of 100 (more than a signing chunk)


@pytest.fixture(scope="module")
def backlog() -> Iterator[ChainApp]:
    with tempfile.TemporaryDirectory(prefix="v2v-relay-producer-") as scratch:
        path = Path(scratch) / "events.sqlite"
        app = ChainApp(env=EventStoreSettings(sqlite_path=path).eventsourcing_env())
        for n in range(1, STREAMS + 1):
            coi = str(issue_coi("A1234", 26, 700_000 + n))
            app.start(coi)
            for seq in range(3):
                app.note(coi, seq)
        yield app
        app.close()


def _relay_to(app: ChainApp, publisher: Any, topic: str, signer: SiteSigningKey) -> OutboxRelay:
    return OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=SPEC.translator,
        signer=signer,
        state=InMemoryRelayState(),
        publisher=publisher,
        topic=topic,
        page_size=100,
    )


def _on(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
    records = read_topic(bootstrap, topic)
    found = [(at.partition, at.offset, r.key, r.value, list(r.headers)) for at, r in records]
    return [(p, k, v, h) for p, _, k, v, h in sorted(found, key=lambda f: (f[0], f[1]))]


def test_librdkafka_publishes_what_kafka_python_publishes_to_the_same_partitions(
    kafka_bootstrap: str, backlog: ChainApp
) -> None:
    run = uuid4().hex[:8]
    old, new = f"v2v-test-relay-kp-{run}", f"v2v-test-relay-rd-{run}"
    ensure_topics(kafka_bootstrap, [old, new], PARTITIONS)
    signer = SiteSigningKey.from_seed(SITE_ID, b"\x07" * 32)
    kafka_python = KafkaPublisher(kafka_bootstrap, client_id="v2v-test-relay-kp")
    librdkafka = RdKafkaPublisher(kafka_bootstrap, "v2v-test-relay-rd")
    try:
        assert _relay_to(backlog, kafka_python, old, signer).publish_pending() == STREAMS * 4
        assert _relay_to(backlog, librdkafka, new, signer).publish_pending() == STREAMS * 4
    finally:
        kafka_python.close()
        librdkafka.close()
    published_old, published_new = _on(kafka_bootstrap, old), _on(kafka_bootstrap, new)
    assert len(published_new) == STREAMS * 4
    assert published_new == published_old
    assert len({partition for partition, *_ in published_new}) == PARTITIONS
    for _, key, value, _ in published_new:
        assert decode(value).coi.encode() == key


def _refused(publisher: RdKafkaPublisher, record: OutboundRecord) -> PublishRefused:
    with pytest.raises(PublishRefused) as refused:
        publisher.publish([record])
    return refused.value


def test_the_librdkafka_publisher_says_which_record_the_broker_or_the_producer_refused(
    kafka_bootstrap: str,
) -> None:
    topic = f"v2v-test-rd-publisher-{uuid4()}"
    ensure_topics(kafka_bootstrap, [topic], 1)
    small, again, after = (
        OutboundRecord(topic, b"k", value, []) for value in (b"small", b"again", b"after")
    )
    oversized = OutboundRecord(topic, b"k", b"x" * 1_500_000, [])  # refused by the broker
    huge = OutboundRecord(topic, b"k", b"x" * 5 * 1024 * 1024, [])  # by the producer: > 4 MiB
    publisher = RdKafkaPublisher(kafka_bootstrap, "v2v-test-rd-publisher")
    try:
        publisher.publish([small])
        refused = _refused(publisher, oversized)
        assert refused.record is oversized
        assert isinstance(refused.error, MessageSizeTooLargeError)
        assert refused.reason.startswith(
            "[Error 10] MessageSizeTooLargeError: The server has a configurable"
        )
        refused = _refused(publisher, huge)
        assert refused.record is huge
        assert isinstance(refused.error, MessageSizeTooLargeError)
        publisher.publish([again])  # refused before sending: this producer goes on
        # a page whose middle record is refused: that one is named, the others were sent
        with pytest.raises(PublishRefused) as in_page:
            publisher.publish([after, oversized, after])
        assert in_page.value.record is oversized
    finally:
        publisher.close()
    values = [r.value for _, r in read_topic(kafka_bootstrap, topic)]
    assert values[:2] == [b"small", b"again"]
    assert b"x" * 1_500_000 not in values


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_broker_out_of_reach_fails_the_page_and_the_relay_does_not_advance(
    backlog: ChainApp,
) -> None:
    publisher = RdKafkaPublisher(f"127.0.0.1:{_free_port()}", "v2v-test-rd-unreachable")
    record = OutboundRecord("v2v-test-nowhere", b"k", b"v", [])
    try:
        with pytest.raises(PublishFailed, match="not acknowledged within 1s"):
            publisher.publish([record], timeout_s=1.0)
        state = InMemoryRelayState()
        relay = OutboxRelay(
            source=backlog.recorder,
            mapper=backlog.mapper,
            translator=SPEC.translator,
            signer=SiteSigningKey.generate(SITE_ID),
            state=state,
            publisher=_Quick(publisher),
            topic="v2v-test-nowhere",
        )
        with pytest.raises(PublishFailed):
            relay.publish_page()
        assert state.position() == 0
        assert state.all_heads() == {}
    finally:
        publisher.close()


class _Quick:
    """The publisher with a short timeout (the relay's default waits two minutes)."""

    def __init__(self, inner: RdKafkaPublisher) -> None:
        self.inner = inner

    def publish(self, records: Any) -> None:
        self.inner.publish(records, timeout_s=1.0)


def test_the_relay_settings_select_the_producer(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "signing.key"
    SiteSigningKey.generate(SITE_ID).save(key)
    common = {
        "context": "intake",
        "site_id": SITE_ID,
        "signing_key_file": key,
        "sqlite_path": tmp_path / "events.sqlite",
        "kafka_bootstrap": kafka_bootstrap,
    }
    assert load_settings(RelaySettings, **common).relay_producer == "librdkafka"
    monkeypatch.setenv("V2V_RELAY_PRODUCER", "kafka-python")
    chosen = load_settings(RelaySettings, **common)
    assert chosen.relay_producer == "kafka-python"
    choices: list[tuple[RelayProducer, type]] = [
        ("kafka-python", KafkaPublisher),
        ("librdkafka", RdKafkaPublisher),
    ]
    for producer, kind in choices:
        publisher = make_publisher(producer, kafka_bootstrap, "v2v-test-select")
        try:
            assert isinstance(publisher, kind)
        finally:
            publisher.close()
