"""Consuming every context topic and the signed checkpoints (`v2v.checkpoints.v1`; one consumer
group) in batches into the projection core.

Offsets live in the projection's store, written with the batch's envelopes: on (re)assignment
the consumer seeks each partition to its stored next offset (the beginning when none), so
Kafka's committed offsets are never relied upon. Every record is verified before it is folded
(`ChainProjection.ingest`; a refused record is quarantined and the consumer goes on with the
next one; `records_quarantined` counts them). One CONSUMER span per batch continues the
trace of the batch's first traced record and links the others (OpenTelemetry's batch
pattern): a span per record would cost more than folding the record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from v2v_platform import telemetry
from v2v_platform.consumer.contact import ContactCheck
from v2v_platform.consumer.subscription import SubscriptionWatch
from v2v_platform.envelope.headers import HEADER_TRACEPARENT
from v2v_platform.relay.topics import V2V_TOPICS
from v2v_projection.chain_projection import ChainProjection, Record

log = logging.getLogger("v2v.projection")
TOPICS = V2V_TOPICS  # the five context topics and the checkpoint topic
MAX_LINKS = 128
SCANNED_FOR_TRACES = 512  # records of a partition's batch looked at for trace context
CONSUMER_CONFIG: dict[str, object] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 16 * 1024 * 1024,
    "isolation_level": "read_committed",
}


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: KafkaConsumer, projection: ChainProjection) -> None:
        self._consumer = consumer
        self._projection = projection

    def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    def on_partitions_assigned(self, assigned: Any) -> None:
        stored = self._projection.offsets()
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)


class ProjectionConsumer:
    def __init__(
        self,
        projection: ChainProjection,
        *,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str] = TOPICS,
        max_poll_records: int = 5000,
        client_options: Mapping[str, object] | None = None,
    ) -> None:
        self._projection = projection
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            max_poll_records=max_poll_records,
            **CONSUMER_CONFIG,
            **(client_options or {}),
        )
        self._topics = list(topics)
        self._subscribe()
        self._watch = SubscriptionWatch(
            self._consumer, self._subscribe, "the context and checkpoint topics"
        )
        self._contact = ContactCheck(self._consumer)
        self.records_seen = 0
        self.envelopes_stored = 0
        self.records_quarantined = 0

    def _subscribe(self) -> None:
        listener = SeekToStoredOffsets(self._consumer, self._projection)
        self._consumer.subscribe(self._topics, listener=listener)

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Poll one batch, verify it, fold what is trusted, store it with its refused records
        and its offsets; returns how many envelopes were new."""
        self._watch.check()
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        self._contact.after_poll(polled)
        if not polled:
            return 0
        records: list[Record] = []
        keys: list[bytes | None] = []
        offsets: dict[tuple[str, int], int] = {}
        traced: list[Any] = []
        for tp, batch in polled.items():
            topic, partition = tp.topic, tp.partition
            records.extend([(topic, partition, r.offset, r.value) for r in batch])
            keys.extend([r.key for r in batch])
            offsets[(topic, partition)] = batch[-1].offset + 1
            if len(traced) < MAX_LINKS:
                traced.extend(traced_headers(batch, MAX_LINKS - len(traced)))
        quarantined = self._projection.untrusted_records
        with batch_span(traced, len(records)):
            stored = self._projection.ingest(records, offsets, wait=False, keys=keys)
        self.records_seen += len(records)
        self.envelopes_stored += stored
        self.records_quarantined += self._projection.untrusted_records - quarantined
        return stored

    def rewind_to_stored(self) -> None:
        """After a failed batch: read again from the stored offsets."""
        SeekToStoredOffsets(self._consumer, self._projection).on_partitions_assigned(
            self._consumer.assignment()
        )

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def traced_headers(batch: Sequence[Any], wanted: int) -> list[Any]:
    headers = []
    for record in batch[:SCANNED_FOR_TRACES]:
        if record.headers and any(name == HEADER_TRACEPARENT for name, _ in record.headers):
            headers.append(record.headers)
            if len(headers) == wanted:
                break
    return headers


def batch_span(traced: list[Any], count: int) -> Any:
    parent = telemetry.extract_context(traced[0]) if traced else None
    links = [
        Link(span.get_span_context())
        for headers in traced[1:]
        if (span := trace.get_current_span(telemetry.extract_context(headers)))
    ]
    return telemetry.tracer("v2v.projection").start_as_current_span(
        "v2v projection process",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.batch.message_count": count,
        },
    )
