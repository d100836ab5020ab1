"""Where audited records come from: a snapshot of the Kafka topics, or an export file.

Either way the result is a `HistoryHeader` (the exported extents: for Kafka, each
partition's [beginning, end) offsets at the moment of the snapshot) and the records in order
within each partition, so export, replay and verify all work on the same shape.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from v2v_platform import kafka_security
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.history_file import (
    Extent,
    HistoryFileError,
    HistoryHeader,
    HistoryRecord,
    read_history,
)

EVENT_TOPICS: tuple[str, ...] = tuple(topic_for(context) for context in CONTEXTS)
DEFAULT_TOPICS: tuple[str, ...] = (*EVENT_TOPICS, CHECKPOINT_TOPIC)
OPTIONAL_TOPICS: tuple[str, ...] = (CHECKPOINT_TOPIC,)
"""Read by default when the broker has them (a consortium whose relays publish no
checkpoints yet has no checkpoint topic)."""
BOOTSTRAP_TIMEOUT_MS = 15_000
STALL_TIMEOUT_S = 60.0
POLL_TIMEOUT_MS = 500
POLL_MAX_RECORDS = 5000


class SourceError(Exception):
    """The history cannot be read; the message says what and where."""


@dataclass
class History:
    """A header and its records, read lazily (records may raise HistoryFileError), and where
    they come from (a file path or kafka://HOST:PORT)."""

    header: HistoryHeader
    records: Iterator[HistoryRecord]
    label: str

    @property
    def expected_records(self) -> int:
        return sum(extent.end - extent.start for extent in self.header.extents)


@functools.lru_cache(maxsize=65536)
def partition_for(coi: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key `coi` (murmur2, as the relay)."""
    return (int(murmur2(coi.encode())) & 0x7FFFFFFF) % partitions


def open_file(path: Path) -> History:
    if not path.is_file():
        raise SourceError(f"history file {path} does not exist")
    try:
        header, records = read_history(path)
    except (HistoryFileError, OSError) as error:
        raise SourceError(f"cannot read history file {path}: {error}") from None
    return History(header, records, str(path))


def open_kafka(bootstrap: str, topics: Sequence[str], optional: Sequence[str] = ()) -> History:
    """Snapshot the topics' offsets now; the records are read up to that snapshot only.
    Topics in `optional` that the broker does not have are left out."""
    _check_bootstrap(bootstrap)
    consumer = _consumer(bootstrap)
    try:
        header = _snapshot(consumer, bootstrap, topics, optional)
    except KafkaError as error:
        consumer.close()
        raise SourceError(
            f"cannot read the topic offsets from Kafka at {bootstrap}: {error}"
        ) from None
    except SourceError:
        consumer.close()
        raise
    return History(header, _read(consumer, header), header.source)


def _check_bootstrap(bootstrap: str) -> None:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise SourceError(f"Kafka bootstrap {bootstrap!r}: expected HOST:PORT[,HOST:PORT...]")


def _consumer(bootstrap: str) -> Any:
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            client_id="v2v-audit",
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            **kafka_security.environment_options(),
        )
    except KafkaError as error:
        waited = f"no answer within {BOOTSTRAP_TIMEOUT_MS / 1000:g} s"
        raise SourceError(f"cannot reach Kafka at {bootstrap} ({waited}): {error}") from None


def _snapshot(
    consumer: Any, bootstrap: str, topics: Sequence[str], optional: Sequence[str] = ()
) -> HistoryHeader:
    known = consumer.topics()
    topics = [topic for topic in topics if topic in known or topic not in optional]
    missing = [topic for topic in topics if topic not in known]
    if missing:
        raise SourceError(f"topic(s) not on the broker at {bootstrap}: {', '.join(missing)}")
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    starts = consumer.beginning_offsets(partitions)
    # checkpoints first: each commits events published (acknowledged) before it, so events
    # snapshotted after it hold every head it commits (no false truncation at the edge)
    checkpoints = [tp for tp in partitions if is_checkpoint_topic(tp.topic)]
    ends = consumer.end_offsets(checkpoints) if checkpoints else {}
    ends.update(consumer.end_offsets([tp for tp in partitions if tp not in ends]))
    extents = [Extent(tp.topic, tp.partition, starts[tp], ends[tp]) for tp in partitions]
    exported_at = datetime.now(UTC).isoformat()
    return HistoryHeader(exported_at, f"kafka://{bootstrap}", extents)


def _read(consumer: Any, header: HistoryHeader) -> Iterator[HistoryRecord]:
    try:
        yield from _read_extents(consumer, header.extents)
    except KafkaError as error:
        raise SourceError(f"reading from Kafka failed: {error}") from None
    finally:
        consumer.close()


def _read_extents(consumer: Any, extents: list[Extent]) -> Iterator[HistoryRecord]:
    pending = {TopicPartition(e.topic, e.partition): e for e in extents if e.end > e.start}
    if not pending:
        return
    consumer.assign(list(pending))
    for partition, wanted in pending.items():
        consumer.seek(partition, wanted.start)
    last_progress = time.monotonic()
    while pending:
        batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_MAX_RECORDS)
        if batch:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
            waiting = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in pending)
            raise SourceError(
                f"no records from Kafka for {STALL_TIMEOUT_S:g}s; waiting on {waiting}"
            )
        for partition, records in batch.items():
            extent = pending.get(partition)
            if extent is None:
                continue
            for record in records:
                if record.offset < extent.end:
                    value = record.value if record.value is not None else b""
                    yield HistoryRecord(partition.topic, partition.partition, record.offset, value)
            if consumer.position(partition) >= extent.end:
                del pending[partition]
                consumer.pause(partition)
