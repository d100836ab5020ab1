"""Reading what is on a topic right now, for tests and audits of small histories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from v2v_platform.envelope.verify import Location


def read_topic(
    bootstrap: str, topic: str, keep: Callable[[Any], bool] = lambda record: True
) -> list[tuple[Location, Any]]:
    """Every record of `topic` from the beginning up to its end offsets at call time, with
    its location, filtered by `keep`. No consumer group: nothing is committed."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
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
