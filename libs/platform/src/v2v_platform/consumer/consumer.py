"""Consuming envelopes from Kafka: apply once, make durable, then commit offsets.

The `EnvelopeConsumer` polls a batch, hands the decoded envelopes of the batch to the
consumer's `ConsumerStore` (which applies new ones and records them in its ledger in ONE
transaction), and commits the Kafka offsets only after that transaction committed. A crash
between the two redelivers the batch; the ledger makes the redelivery a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.message import DecodeError
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform import telemetry
from v2v_platform.consumer.ledger import Ledger
from v2v_platform.consumer.subscription import SubscriptionWatch
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.verify import Location

log = logging.getLogger(__name__)

CONSUMER_DEFAULTS: dict[str, object] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "max_poll_records": 2000,
    "fetch_max_bytes": 32 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "isolation_level": "read_committed",
}


@dataclass(frozen=True)
class Delivered:
    envelope: Envelope
    location: Location
    headers: Sequence[tuple[str, bytes]]


@dataclass
class ApplyStats:
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    gap_details: list[str] = field(default_factory=list)

    def add(self, other: ApplyStats) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.gaps += other.gaps
        self.gap_details.extend(other.gap_details)


class Apply(Protocol):
    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None: ...


class ConsumerStore(Protocol):
    """Opens a transaction yielding (unit of work for `apply`, ledger in that transaction)."""

    def transaction(self) -> AbstractContextManager[tuple[Any, Ledger]]: ...


def apply_once(batch: Sequence[Delivered], ledger: Ledger, unit: Any, apply: Apply) -> ApplyStats:
    """Apply each envelope not yet applied, in order; record the new versions."""
    stats = ApplyStats()
    ids = {d.envelope.aggregate_id for d in batch}
    last = ledger.last_versions(ids)
    changed: dict[str, int] = {}
    for delivered in batch:
        envelope = delivered.envelope
        seen = last.get(envelope.aggregate_id, 0)
        if envelope.aggregate_version <= seen:
            stats.duplicates += 1
            continue
        if envelope.aggregate_version != seen + 1:
            stats.gaps += 1
            version = envelope.aggregate_version
            where = delivered.location
            stats.gap_details.append(f"{envelope.aggregate_id}: v{seen} -> v{version} at {where}")
        with telemetry.consumer_span(delivered.location.topic, delivered.headers):
            apply(unit, delivered)
        last[envelope.aggregate_id] = changed[envelope.aggregate_id] = envelope.aggregate_version
        stats.applied += 1
    ledger.record(changed)
    return stats


class EnvelopeConsumer:
    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        store: ConsumerStore,
        apply: Apply,
        **overrides: object,
    ) -> None:
        config = {**CONSUMER_DEFAULTS, **overrides}
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, **config)
        self._topics = list(topics)
        self._consumer.subscribe(self._topics)
        self._watch = SubscriptionWatch(
            self._consumer, lambda: self._consumer.subscribe(self._topics), ", ".join(self._topics)
        )
        self._store = store
        self._apply = apply
        self.stats = ApplyStats()

    def poll_once(self, timeout_ms: int = 500) -> ApplyStats:
        """Poll one batch, apply it durably, then commit its offsets."""
        self._watch.check()
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        batch = list(_deliveries(polled))
        if not batch:
            return ApplyStats()
        with self._store.transaction() as (unit, ledger):
            stats = apply_once(batch, ledger, unit, self._apply)
        self._consumer.commit(_next_offsets(polled))
        for detail in stats.gap_details:
            log.warning("version gap: %s", detail)
        self.stats.add(stats)
        return stats

    def rewind_to_committed(self) -> None:
        """After a failed batch: go back to the last committed offsets, so that batch is
        delivered again instead of being skipped by the consumer's in-memory position."""
        for tp in self._consumer.assignment():
            committed = self._consumer.committed(tp)
            if committed is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class PoisonRecord(RuntimeError):
    """A record on a v2v topic that is not an envelope: consumption stops, nothing is skipped."""


def _deliveries(polled: dict[TopicPartition, list[Any]]) -> Iterator[Delivered]:
    for tp, records in polled.items():
        for record in records:
            location = Location(tp.topic, tp.partition, record.offset)
            try:
                envelope = decode(record.value)
            except DecodeError as error:
                raise PoisonRecord(f"record at {location} is not an envelope: {error}") from error
            yield Delivered(envelope, location, list(record.headers or ()))


def _next_offsets(
    polled: dict[TopicPartition, list[Any]],
) -> dict[TopicPartition, OffsetAndMetadata]:
    return {
        tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)
        for tp, records in polled.items()
        if records
    }
