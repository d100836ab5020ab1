"""The projection's librdkafka consumer on the real broker (ADR 0012): positions come from the
projection's store, never from offsets committed to Kafka (none are); a failed batch is read
again from the stored offsets; and a poll hands over what has arrived without waiting for a
full batch (a single record is folded as soon as it is there, not after the poll's timeout).

The projection is a stand-in that records what it is given and answers `offsets()` like the
store (what was stored): the consumer is what is tested here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import uuid4

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaProducer

from v2v_platform.relay import ensure_topics
from v2v_platform.testing.producing import eventually
from v2v_projection.consumer import ProjectionConsumer
from v2v_projection.writer_process import StoreWriteFailed

pytestmark = pytest.mark.integration
PARTITIONS = 3


class StoredProjection:
    """Stores every batch it is given (its records and next offsets); `fail_next` makes the
    next batch fail as a lost store writer does."""

    def __init__(self, stored: dict[tuple[str, int], int] | None = None) -> None:
        self.stored: dict[tuple[str, int], int] = dict(stored or {})
        self.records: list[tuple[str, int, int, bytes]] = []
        self.untrusted_records = 0
        self.fail_next = False

    def offsets(self) -> dict[tuple[str, int], int]:
        return dict(self.stored)

    def ingest(
        self,
        records: Sequence[tuple[str, int, int, bytes]],
        offsets: dict[tuple[str, int], int],
        *,
        wait: bool,
        keys: Sequence[bytes | None],
    ) -> int:
        if self.fail_next:
            self.fail_next = False
            raise StoreWriteFailed("the store writer process exited")
        self.records.extend(records)
        self.stored.update(offsets)
        return len(records)


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"test-projection-librdkafka-{uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [name], PARTITIONS)
    return name


@pytest.fixture
def consumers() -> Iterator[list[ProjectionConsumer]]:
    made: list[ProjectionConsumer] = []
    yield made
    for consumer in made:
        consumer.close()


def produce(kafka: str, topic: str, per_partition: int) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all")
    try:
        for partition in range(PARTITIONS):
            for n in range(per_partition):
                producer.send(topic, value=f"{partition}-{n}".encode(), partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


def consumer_of(
    kafka: str, topic: str, projection: Any, made: list[ProjectionConsumer], group: str
) -> ProjectionConsumer:
    consumer = ProjectionConsumer(
        projection, bootstrap=kafka, group_id=group, topics=[topic], max_poll_records=5000
    )
    made.append(consumer)
    return consumer


def read_until(consumer: ProjectionConsumer, projection: StoredProjection, count: int) -> None:
    def enough() -> bool:
        try:
            consumer.poll_once(timeout_ms=200)
        except StoreWriteFailed:
            consumer.rewind_to_stored()  # as the service's consume loop does
        return len(projection.records) >= count

    eventually(enough, f"{count} records")


def test_positions_come_from_the_store_and_nothing_is_committed_to_kafka(
    kafka_bootstrap: str, topic: str, consumers: list[ProjectionConsumer]
) -> None:
    produce(kafka_bootstrap, topic, 5)
    projection = StoredProjection({(topic, 0): 3})  # partition 0 stored up to offset 3
    group = f"test-{uuid4().hex[:8]}"
    consumer = consumer_of(kafka_bootstrap, topic, projection, consumers, group)

    read_until(consumer, projection, 2 + 5 + 5)

    read = sorted((partition, offset) for _, partition, offset, _ in projection.records)
    assert read == [(0, 3), (0, 4)] + [(p, o) for p in (1, 2) for o in range(5)]
    assert projection.stored == {(topic, 0): 5, (topic, 1): 5, (topic, 2): 5}
    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 10)
    finally:
        probe.close()
    assert [tp.offset for tp in committed] == [-1001] * PARTITIONS  # none committed


def test_a_failed_batch_is_read_again_from_the_stored_offsets(
    kafka_bootstrap: str, topic: str, consumers: list[ProjectionConsumer]
) -> None:
    produce(kafka_bootstrap, topic, 4)
    projection = StoredProjection()
    projection.fail_next = True
    consumer = consumer_of(kafka_bootstrap, topic, projection, consumers, f"t-{uuid4().hex[:8]}")

    read_until(consumer, projection, 3 * 4)

    read = sorted((partition, offset) for _, partition, offset, _ in projection.records)
    assert read == [(p, o) for p in range(PARTITIONS) for o in range(4)]  # each once


def test_a_poll_hands_over_a_single_record_without_waiting_for_a_full_batch(
    kafka_bootstrap: str, topic: str, consumers: list[ProjectionConsumer]
) -> None:
    projection = StoredProjection()
    consumer = consumer_of(kafka_bootstrap, topic, projection, consumers, f"t-{uuid4().hex[:8]}")
    produce(kafka_bootstrap, topic, 1)  # one record per partition
    waited: list[float] = []
    while len(projection.records) < PARTITIONS and len(waited) < 10:
        started = time.monotonic()
        consumer.poll_once(timeout_ms=30_000)  # a full batch would wait all of it
        waited.append(time.monotonic() - started)
    assert len(projection.records) == PARTITIONS
    assert max(waited) < 15, waited
