"""Kafka measurements on the same topics, in the same run: a kafka-python consumer and a
librdkafka (confluent-kafka) consumer that do nothing else (raw, one per client), and the
projection core (its consumer is librdkafka's, ADR 0012) consuming them into its PostgreSQL
store (e2e), once without verifying the records (`TrustEverything`, the bench's baseline
only: the service always verifies) and once verifying every record as the service does.

The history goes onto fresh, uniquely named copies of the five context topics (6 partitions,
key = COI, as the relays publish), deleted afterwards. Both rates are counted from the first
batch received to the last record, so connecting and joining the group are not measured.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer
from confluent_kafka import TopicPartition as RdTopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.testing.infra import create_database, drop_database
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.consumer import CONSUMER_CONFIG, ProjectionConsumer
from v2v_projection.kafka_client import client_config
from v2v_projection.store import PostgresProjectionStore
from v2v_projection.verifier import Key, Record, RecordVerifier, Refused
from v2v_projection.writer_process import ProcessBatchWriter

PARTITIONS = 6
MAX_POLL_RECORDS = 5000
KAFKA_PYTHON_CONFIG: dict[str, object] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 16 * 1024 * 1024,
    "isolation_level": "read_committed",
}
"""The projection consumer's settings as kafka-python had them (the raw kafka-python read)."""


@dataclass(frozen=True)
class Rate:
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class TrustEverything:
    """The e2e baseline without verification (never used by the service)."""

    def check(self, records: Sequence[Record], keys: Sequence[Key] | None = None) -> Refused:
        return []

    def close(self) -> None:
        return None


@contextmanager
def bench_topics(bootstrap: str, topics: list[str]) -> Iterator[dict[str, str]]:
    """Fresh copies of the topics, named bench-<run>.<topic>; deleted on exit."""
    run = uuid.uuid4().hex[:8]
    names = {topic: f"bench-{run}.{topic}" for topic in topics}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names.values()])
    try:
        yield names
    finally:
        admin.delete_topics(list(names.values()))
        admin.close()


def produce(bootstrap: str, records: list[tuple[str, bytes]], names: dict[str, str]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    started = time.perf_counter()
    decode = Envelope.FromString
    for topic, value in records:
        producer.send(names[topic], key=decode(value).coi.encode(), value=value)
    producer.flush(timeout=300)
    producer.close()
    return time.perf_counter() - started


def raw_consume(bootstrap: str, names: list[str], total: int) -> Rate:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, max_poll_records=MAX_POLL_RECORDS, **KAFKA_PYTHON_CONFIG
    )
    partitions = [
        TopicPartition(name, p) for name in names for p in consumer.partitions_for_topic(name) or ()
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    seen, started, first = 0, 0.0, 0
    while seen < total:
        polled = consumer.poll(timeout_ms=1000)
        count = sum(len(batch) for batch in polled.values())
        if count and not started:
            started, first = time.perf_counter(), count
        seen += count
    elapsed = time.perf_counter() - started
    consumer.close()
    return Rate(seen - first, elapsed)


def raw_consume_librdkafka(bootstrap: str, names: list[str], total: int) -> Rate:
    """librdkafka reading the same topics with the projection consumer's settings, batches
    taken as it does (what is fetched, up to MAX_POLL_RECORDS), doing nothing else."""
    consumer = Consumer(
        {**client_config(bootstrap, None), **CONSUMER_CONFIG, "group.id": "bench-raw"}
    )
    metadata = consumer.list_topics(timeout=30)
    consumer.assign(
        [
            RdTopicPartition(name, partition, OFFSET_BEGINNING)
            for name in names
            for partition in sorted(metadata.topics[name].partitions)
        ]
    )
    seen, started, first = 0, 0.0, 0
    while seen < total:
        messages = consumer.consume(MAX_POLL_RECORDS, 0)
        if not messages:
            message = consumer.poll(1.0)
            if message is None:
                continue
            messages = [message, *consumer.consume(MAX_POLL_RECORDS - 1, 0)]
        count = sum(1 for message in messages if message.error() is None)
        if count and not started:
            started, first = time.perf_counter(), count
        seen += count
    elapsed = time.perf_counter() - started
    consumer.close()
    return Rate(seen - first, elapsed)


def e2e_consume(
    bootstrap: str,
    admin_dsn: str,
    names: list[str],
    total: int,
    verifier: Callable[[], RecordVerifier],
) -> Rate:
    database = create_database(admin_dsn, "v2v_bench")
    store = PostgresProjectionStore(database.dsn)
    writer = ProcessBatchWriter(database.dsn)  # as the service does
    projection = ChainProjection(store, writer, verifier=verifier())
    try:
        consumer = ProjectionConsumer(
            projection,
            bootstrap=bootstrap,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            topics=names,
            max_poll_records=MAX_POLL_RECORDS,
        )
        started, first = 0.0, 0
        while consumer.records_seen < total:
            consumer.poll_once(timeout_ms=1000)
            if consumer.records_seen and not started:
                started, first = time.perf_counter(), consumer.records_seen
        projection.flush()
        elapsed = time.perf_counter() - started
        consumer.close()
        if store.count() != total or projection.untrusted_records:
            raise AssertionError(
                f"stored {store.count()} envelopes of {total},"
                f" {projection.untrusted_records} quarantined"
            )
        return Rate(consumer.records_seen - first, elapsed)
    finally:
        projection.close()
        drop_database(admin_dsn, database.dbname)
