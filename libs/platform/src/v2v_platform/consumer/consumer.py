"""Consuming envelopes from Kafka: verify, apply once, make durable, then commit offsets.

The `EnvelopeConsumer` polls a batch and puts every record through its `EnvelopeGate`
(decoding, hash, signature, signer, authorship). In ONE transaction of the consumer's
`ConsumerStore` it then applies the trusted envelopes not yet applied, records them in its
ledger and quarantines the others (`apply_verified`); it commits the Kafka offsets only after
that transaction committed. A crash between the two redelivers the batch; the ledger and the
quarantine (one row per location) make the redelivery a no-op. An untrusted record never stops
the consumer: it is quarantined, counted, logged once, and the next record is taken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from opentelemetry import metrics

from v2v_platform.consumer.apply import Apply, ApplyStats, Delivered, apply_once
from v2v_platform.consumer.contact import ContactCheck
from v2v_platform.consumer.ledger import GuardedLedger
from v2v_platform.consumer.subscription import SubscriptionWatch
from v2v_platform.consumer.verified import Checked, apply_verified
from v2v_platform.envelope.trust import EnvelopeGate, Untrusted
from v2v_platform.envelope.verify import Location

__all__ = [
    "Apply",
    "ApplyStats",
    "ConsumerStore",
    "Delivered",
    "EnvelopeConsumer",
    "apply_once",
    "checked_records",
]

log = logging.getLogger(__name__)
QUARANTINED = metrics.get_meter("v2v_platform.consumer").create_counter(
    "v2v.consumer.quarantined",
    unit="{record}",
    description="Records a consumer refused to apply and put in its quarantine",
)
RELEASED_CHECK_S = 1.0  # how often an idle consumer looks for released quarantine rows

CONSUMER_DEFAULTS: dict[str, object] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "max_poll_records": 2000,
    "fetch_max_bytes": 32 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "isolation_level": "read_committed",
}


class ConsumerStore(Protocol):
    """Opens a transaction yielding (unit of work for `apply`, ledger in that transaction)."""

    def transaction(self) -> AbstractContextManager[tuple[Any, GuardedLedger]]: ...


class EnvelopeConsumer:
    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        store: ConsumerStore,
        apply: Apply,
        gate: EnvelopeGate,
        **overrides: object,
    ) -> None:
        config = {**CONSUMER_DEFAULTS, **overrides}
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, **config)
        self._group_id = group_id
        self._topics = list(topics)
        self._consumer.subscribe(self._topics)
        self._watch = SubscriptionWatch(
            self._consumer, lambda: self._consumer.subscribe(self._topics), ", ".join(self._topics)
        )
        self._store = store
        self._apply = apply
        self._gate = gate
        self._released_check_at = 0.0
        self._contact = ContactCheck(self._consumer)
        self.stats = ApplyStats()

    def poll_once(self, timeout_ms: int = 500) -> ApplyStats:
        """Poll one batch, verify it, apply what is trusted and quarantine the rest durably,
        then commit its offsets. Released quarantine rows are taken first (an idle consumer
        looks for them every `RELEASED_CHECK_S`)."""
        self._watch.check()
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        self._contact.after_poll(polled)
        checked = list(checked_records(polled, self._gate))
        if not checked and time.monotonic() < self._released_check_at:
            return ApplyStats()
        self._released_check_at = time.monotonic() + RELEASED_CHECK_S
        with self._store.transaction() as (unit, ledger):
            stats = apply_verified(checked, ledger, unit, self._apply, self._gate, _now())
        if checked:
            self._consumer.commit(_next_offsets(polled))
        self._report(stats)
        self.stats.add(stats)
        return stats

    def _report(self, stats: ApplyStats) -> None:
        for detail in stats.gap_details:
            log.warning("version gap: %s", detail)
        for detail in stats.quarantine_details:
            log.warning("quarantined: %s", detail)
        for record in stats.newly_quarantined:
            for reason in record.reasons:
                attributes = {"consumer": self._group_id, "topic": record.location.topic}
                QUARANTINED.add(1, {**attributes, "reason": reason})
        if stats.released:
            log.info("applied %d released quarantined record(s)", stats.released)

    def rewind_to_committed(self) -> None:
        """After a failed batch: go back to the last committed offsets, so that batch is
        delivered again instead of being skipped by the consumer's in-memory position."""
        for tp in self._consumer.assignment():
            committed = self._consumer.committed(tp)
            if committed is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer owns now (empty until its group assigned some)."""
        return set(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def checked_records(
    polled: dict[TopicPartition, list[Any]], gate: EnvelopeGate
) -> Iterator[Checked]:
    """Each polled record through the gate: `Delivered` when trusted, else `Untrusted`."""
    for tp, records in polled.items():
        for record in records:
            location = Location(tp.topic, tp.partition, record.offset)
            found = gate.check(record.value, location, record.key)
            if isinstance(found, Untrusted):
                yield found
            else:
                yield Delivered(found, location, list(record.headers or ()), record.value)


def _now() -> datetime:
    return datetime.now(UTC)


def _next_offsets(
    polled: dict[TopicPartition, list[Any]],
) -> dict[TopicPartition, OffsetAndMetadata]:
    return {
        tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)
        for tp, records in polled.items()
        if records
    }
