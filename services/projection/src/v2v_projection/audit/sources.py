"""Where audited records come from: a snapshot of the Kafka topics, or an export file.

Either way the result is a `HistoryHeader` (the exported extents: for Kafka, each
partition's [beginning, end) offsets at the moment of the snapshot) and the records in order
within each partition, so export, replay and verify all work on the same shape.

Kafka is read through librdkafka (confluent-kafka, ADR 0012): its fetching runs in its own
threads, beside the interpreter that decodes and verifies. No consumer group is joined (the
partitions are assigned; nothing is committed), and records are read as they were before,
uncommitted included (the relays publish without transactions).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, KafkaException, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from v2v_platform import kafka_security
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.config import ConfigurationError, KafkaSecuritySettings, load_settings
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.history_file import (
    Extent,
    HistoryFileError,
    HistoryHeader,
    HistoryRecord,
    read_history,
)
from v2v_projection.kafka_client import (
    EARLIEST,
    LATEST,
    client_config,
    list_offsets,
    open_admin,
    partitions_of,
    translated,
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
    options = environment_options()
    try:
        header = _snapshot(open_admin(bootstrap, options), bootstrap, topics, optional)
    except KafkaError as error:
        raise SourceError(
            f"cannot read the topic offsets from Kafka at {bootstrap}: {error}"
        ) from None
    return History(header, _read(_consumer(bootstrap, options), header), header.source)


def environment_options() -> dict[str, object]:
    """librdkafka's security options of the V2V_KAFKA_* variables (as
    `kafka_security.environment_options` gives kafka-python's)."""
    try:
        settings = load_settings(KafkaSecuritySettings)
    except ConfigurationError as error:  # exit status 2, naming each bad variable
        print(str(error), file=sys.stderr)
        raise
    return dict(kafka_security.librdkafka_options(settings))


def _check_bootstrap(bootstrap: str) -> None:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise SourceError(f"Kafka bootstrap {bootstrap!r}: expected HOST:PORT[,HOST:PORT...]")


def _consumer(bootstrap: str, options: dict[str, object]) -> Any:
    return Consumer(
        {
            **client_config(bootstrap, options),
            "group.id": "v2v-audit",  # never joined: the partitions are assigned
            "client.id": "v2v-audit",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_uncommitted",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )


def _snapshot(
    admin: Any, bootstrap: str, topics: Sequence[str], optional: Sequence[str] = ()
) -> HistoryHeader:
    timeout_s = BOOTSTRAP_TIMEOUT_MS / 1000
    try:
        partitions, known = partitions_of(admin, topics, timeout_s)
    except KafkaError as error:
        waited = f"no answer within {timeout_s:g} s"
        raise SourceError(f"cannot reach Kafka at {bootstrap} ({waited}): {error}") from None
    topics = [topic for topic in topics if topic in known or topic not in optional]
    missing = [topic for topic in topics if topic not in known]
    if missing:
        raise SourceError(f"topic(s) not on the broker at {bootstrap}: {', '.join(missing)}")
    starts = _offsets(admin, partitions, EARLIEST, timeout_s)
    # checkpoints first: each commits events published (acknowledged) before it, so events
    # snapshotted after it hold every head it commits (no false truncation at the edge)
    checkpoints = [tp for tp in partitions if is_checkpoint_topic(tp.topic)]
    ends = _offsets(admin, checkpoints, LATEST, timeout_s)
    events = [tp for tp in partitions if (tp.topic, tp.partition) not in ends]
    ends.update(_offsets(admin, events, LATEST, timeout_s))
    extents = [
        Extent(tp.topic, tp.partition, starts[tp.topic, tp.partition], ends[tp.topic, tp.partition])
        for tp in partitions
    ]
    exported_at = datetime.now(UTC).isoformat()
    return HistoryHeader(exported_at, f"kafka://{bootstrap}", extents)


def _offsets(
    admin: Any, partitions: list[TopicPartition], spec: Any, timeout_s: float
) -> dict[tuple[str, int], int]:
    """As the records are read: uncommitted included (the high watermark)."""
    return list_offsets(admin, partitions, spec, timeout_s, IsolationLevel.READ_UNCOMMITTED)


def _read(consumer: Any, header: HistoryHeader) -> Iterator[HistoryRecord]:
    try:
        yield from _read_extents(consumer, header.extents)
    except KafkaError as error:
        raise SourceError(f"reading from Kafka failed: {error}") from None
    finally:
        consumer.close()


def _read_extents(consumer: Any, extents: list[Extent]) -> Iterator[HistoryRecord]:
    pending = {(e.topic, e.partition): e for e in extents if e.end > e.start}
    if not pending:
        return
    with translated():
        consumer.assign([TopicPartition(t, p, e.start) for (t, p), e in pending.items()])
    last_progress = time.monotonic()
    while pending:
        with translated():
            batch = _fetch(consumer)
        if batch:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
            waiting = ", ".join(f"{topic}[{partition}]" for topic, partition in pending)
            raise SourceError(
                f"no records from Kafka for {STALL_TIMEOUT_S:g}s; waiting on {waiting}"
            )
        done: set[tuple[str, int]] = set()
        for record in batch:
            error = record.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            topic, partition, offset = record.topic(), record.partition(), record.offset()
            extent = pending.get((topic, partition))
            if extent is None or offset >= extent.end:
                continue
            value = record.value()
            yield HistoryRecord(topic, partition, offset, value if value is not None else b"")
            if offset + 1 >= extent.end:
                done.add((topic, partition))
        if not batch:  # past the extents' ends by records no consumer sees (control records)
            done.update(_at_end(consumer, pending))
        for key in done:
            if key in pending:
                del pending[key]
                consumer.pause([TopicPartition(*key)])


def _fetch(consumer: Any) -> list[Any]:
    """What librdkafka holds now (up to POLL_MAX_RECORDS), else the first record within
    POLL_TIMEOUT_MS and what came with it (a poll never waits for a full batch)."""
    batch: list[Any] = consumer.consume(POLL_MAX_RECORDS, 0)
    if batch:
        return batch
    first = consumer.poll(POLL_TIMEOUT_MS / 1000)
    return [] if first is None else [first, *consumer.consume(POLL_MAX_RECORDS - 1, 0)]


def _at_end(consumer: Any, pending: dict[tuple[str, int], Extent]) -> set[tuple[str, int]]:
    with translated():
        positions = consumer.position([TopicPartition(t, p) for t, p in pending])
    return {
        (tp.topic, tp.partition)
        for tp in positions
        if tp.offset >= 0 and tp.offset >= pending[tp.topic, tp.partition].end
    }
