"""The resolved infrastructure is real: a Kafka round trip and a PostgreSQL round trip."""

from __future__ import annotations

import uuid
from collections import defaultdict

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from v2v_platform.testing.infra import PostgresDatabase

pytestmark = pytest.mark.integration

PARTITIONS = 3
KEYS = [f"COI-{n:03d}" for n in range(12)]
PER_KEY = 5


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="v2v-test-infra")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str) -> dict[str, list[str]]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    sent: dict[str, list[str]] = defaultdict(list)
    try:
        for seq in range(PER_KEY):
            for key in KEYS:
                value = f"{key}#{seq}"
                producer.send(topic, key=key.encode(), value=value.encode()).get(timeout=30)
                sent[key].append(value)
    finally:
        producer.close()
    return sent


def _consume(bootstrap: str, topic: str, expected: int) -> list[tuple[int, str, str]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    received: list[tuple[int, str, str]] = []
    try:
        for _ in range(60):
            for tp, records in consumer.poll(timeout_ms=500).items():
                received += [(tp.partition, r.key.decode(), r.value.decode()) for r in records]
            if len(received) >= expected:
                break
    finally:
        consumer.close()
    return received


def test_kafka_produce_consume_round_trip(kafka_bootstrap: str) -> None:
    topic = f"v2v.test-infra.{uuid.uuid4().hex[:8]}"
    _create_topic(kafka_bootstrap, topic)

    sent = _produce(kafka_bootstrap, topic)
    received = _consume(kafka_bootstrap, topic, expected=len(KEYS) * PER_KEY)

    by_key: dict[str, list[str]] = defaultdict(list)
    partition_of: dict[str, set[int]] = defaultdict(set)
    for partition, key, value in received:
        by_key[key].append(value)
        partition_of[key].add(partition)
    assert by_key == sent  # everything back, per-key order kept
    assert all(len(p) == 1 for p in partition_of.values())  # a key lives in one partition
    assert len({p for ps in partition_of.values() for p in ps}) > 1  # keys spread over partitions


def test_postgres_round_trip(postgres_database: PostgresDatabase) -> None:
    db = postgres_database
    assert db.dbname.startswith("v2v_test_")
    with psycopg.connect(db.dsn) as conn:
        conn.execute("CREATE TABLE units (coi text PRIMARY KEY, volume_ml numeric NOT NULL)")
        conn.execute("INSERT INTO units VALUES (%s, %s), (%s, %s)", ("C1", 212.5, "C2", 198))
        conn.commit()
    with psycopg.connect(
        host=db.host, port=db.port, user=db.user, password=db.password, dbname=db.dbname
    ) as conn:
        rows = conn.execute("SELECT coi, volume_ml::float FROM units ORDER BY coi").fetchall()
        current = conn.execute("SELECT current_database()").fetchone()
    assert rows == [("C1", 212.5), ("C2", 198.0)]
    assert current == (db.dbname,)


def test_postgres_databases_are_fresh_and_dropped(postgres_dsn: str) -> None:
    from v2v_platform.testing.infra import create_database, drop_database

    first, second = create_database(postgres_dsn), create_database(postgres_dsn)
    try:
        assert first.dbname != second.dbname
        session = psycopg.connect(first.dsn, autocommit=True)
        session.execute("SELECT 1")
        drop_database(postgres_dsn, first.dbname)  # an open session does not block the drop
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
        session.close()
    finally:
        drop_database(postgres_dsn, second.dbname)
    with psycopg.connect(postgres_dsn) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert first.dbname not in names
    assert second.dbname not in names
