"""Reading what is on a topic right now, for tests and audits of small histories."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import Break, ChainVerifier, Location


def read_topic(
    bootstrap: str,
    topic: str,
    keep: Callable[[Any], bool] = lambda record: True,
    client_options: Mapping[str, object] | None = None,
) -> list[tuple[Location, Any]]:
    """Every record of `topic` from the beginning up to its end offsets at call time, with
    its location, filtered by `keep`. No consumer group: nothing is committed.
    `client_options`: how it authenticates (`v2v_platform.kafka_security.client_options`)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **dict(client_options or {})
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        found: list[tuple[Location, Any]] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                found += [(Location(topic, tp.partition, r.offset), r) for r in records if keep(r)]
        return found
    finally:
        consumer.close()


def read_verified_until(
    bootstrap: str,
    topic: str,
    ring: KeyRing,
    keep: Callable[[Envelope], bool],
    done: Callable[[list[Envelope]], bool],
    timeout_s: float = 60.0,
    client_options: Mapping[str, object] | None = None,
) -> tuple[list[tuple[Any, Envelope]], list[Break]]:
    """The (record, envelope) pairs of `topic` that `keep` selects, each fed to a
    ChainVerifier, read from the beginning until `done(envelopes)` holds; with every break.
    AssertionError naming the topic when `done` never holds before the deadline."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
        **dict(client_options or {}),
    )
    mine: list[tuple[Any, Envelope]] = []
    breaks: list[Break] = []
    verifier = ChainVerifier(ring)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                envelope = decode(record.value)
                if not keep(envelope):
                    continue
                mine.append((record, envelope))
                location = Location(record.topic, record.partition, record.offset)
                breaks.extend(verifier.feed(envelope, location))
            if done([envelope for _, envelope in mine]):
                return mine, breaks
    finally:
        consumer.close()
    raise AssertionError(f"what the test waits for never reached {topic} in {timeout_s:g}s")
