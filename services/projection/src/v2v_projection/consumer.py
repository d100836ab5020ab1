"""Consuming every context topic and the signed checkpoints (`v2v.checkpoints.v1`; one consumer
group) in batches into the projection core, through librdkafka (confluent-kafka, ADR 0012):
its fetching runs in librdkafka's own threads, off the fold's interpreter.

Offsets live in the projection's store, written with the batch's envelopes: on (re)assignment
the consumer seeks each partition to its stored next offset (the beginning when none), so
Kafka's committed offsets are never relied upon (nothing is committed). Records are read
committed. Every record is verified before it is folded (`ChainProjection.ingest`; a refused
record is quarantined and the consumer goes on with the next one; `records_quarantined` counts
them). One CONSUMER span per batch continues the trace of the batch's first traced record and
links the others (OpenTelemetry's batch pattern): a span per record would cost more than
folding the record.

A batch is what librdkafka has fetched when asked, up to `max_poll_records`: a poll waits (up
to its timeout) only for the first record, never for a full batch. As with the services'
kafka-python consumers, a member left without partitions subscribes again
(`SubscriptionWatch`), and an idle consumer proves now and then that its group coordinator
still answers (`ContactCheck`); a lost cluster or refused credentials, which librdkafka reports
through its error callback, are raised from the next empty poll. Every librdkafka error is
raised as a kafka-python `KafkaError` (`kafka_client.LibrdkafkaError`), which the service's
consume loop waits out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from v2v_platform import telemetry
from v2v_platform.consumer.contact import ContactCheck
from v2v_platform.consumer.subscription import SubscriptionWatch
from v2v_platform.envelope.headers import HEADER_TRACEPARENT
from v2v_platform.relay.topics import V2V_TOPICS
from v2v_projection.chain_projection import ChainProjection, Record
from v2v_projection.kafka_client import (
    KAFKA_LOG,
    BrokerErrors,
    LibrdkafkaError,
    client_config,
    describe,
    translated,
)

log = logging.getLogger("v2v.projection")
TOPICS = V2V_TOPICS  # the five context topics and the checkpoint topic
MAX_LINKS = 128
SCANNED_FOR_TRACES = 512  # records of a batch looked at for trace context, per partition
CONSUMER_CONFIG: dict[str, object] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "isolation.level": "read_committed",
    "topic.metadata.refresh.interval.ms": 10_000,  # a topic created later is found soon
}
"""librdkafka settings of the projection's consumer (and of the bench's raw librdkafka read)."""


class Membership:
    """The consumer's group membership as its rebalance callbacks tell it: on assignment each
    partition starts at its next offset in the projection's store (its beginning when the
    store holds none). Also what `SubscriptionWatch` and `ContactCheck` ask of a consumer: the
    partitions it owns (kept here: asking librdkafka is a round trip to its group thread at
    every poll), leaving the group, and a committed offset (an answer only the group
    coordinator gives)."""

    def __init__(self, consumer: Consumer, projection: ChainProjection) -> None:
        self._consumer = consumer
        self._projection = projection
        self._owned: list[tuple[str, int]] = []

    def positions(self) -> list[TopicPartition]:
        stored = self._projection.offsets()
        return [
            TopicPartition(topic, partition, stored.get((topic, partition), OFFSET_BEGINNING))
            for topic, partition in self._owned
        ]

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned = sorted((tp.topic, tp.partition) for tp in partitions)
        consumer.assign(self.positions())

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned = []
        consumer.unassign()

    def assignment(self) -> list[tuple[str, int]]:
        return self._owned

    def unsubscribe(self) -> None:
        self._owned = []
        with translated():
            self._consumer.unsubscribe()

    def committed(self, partition: tuple[str, int], timeout_ms: int) -> None:
        with translated():
            self._consumer.committed([TopicPartition(*partition)], timeout=timeout_ms / 1000)


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
        """`client_options`: librdkafka options (`kafka_security.librdkafka_options`); the
        security options of `kafka_security.client_options` are renamed."""
        self._projection = projection
        self._errors = BrokerErrors()
        self._consumer = Consumer(
            {
                **client_config(bootstrap, client_options),
                **CONSUMER_CONFIG,
                "group.id": group_id,
                "error_cb": self._errors.record,
            }
        )
        self._max = max_poll_records
        self._topics = list(topics)
        self._membership = Membership(self._consumer, projection)
        self._rewind = False
        self._missing: set[str] = set()
        self._subscribe()
        self._watch = SubscriptionWatch(
            self._membership, self._subscribe, "the context and checkpoint topics"
        )
        self._contact = ContactCheck(self._membership)
        self.records_seen = 0
        self.envelopes_stored = 0
        self.records_quarantined = 0

    def _subscribe(self) -> None:
        membership = self._membership
        self._consumer.subscribe(
            self._topics, on_assign=membership.on_assign, on_revoke=membership.on_revoke
        )

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Poll one batch, verify it, fold what is trusted, store it with its refused records
        and its offsets; returns how many envelopes were new."""
        try:
            self._watch.check()
            if self._rewind:
                self._rewind_now()
            messages = self._fetch(timeout_ms)
        except KafkaException as error:
            raise LibrdkafkaError(describe(error)) from error
        self._contact.after_poll({"records": messages} if messages else {})
        if not messages:
            self._errors.raise_pending()
            return 0
        self._errors.clear()
        return self._ingest(messages)

    def _fetch(self, timeout_ms: int) -> list[Message]:
        """What librdkafka holds now (up to the batch size), else the first record that arrives
        within `timeout_ms` and what came with it."""
        consumer = self._consumer
        messages = consumer.consume(self._max, 0)
        if not messages:
            first = consumer.poll(timeout_ms / 1000)
            if first is None:
                return []
            messages = [first, *consumer.consume(self._max - 1, 0)]
        if any(map(Message.error, messages)):
            messages = [message for message in messages if self._usable(message)]
        return messages

    def _usable(self, message: Any) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() == RdKafkaError.UNKNOWN_TOPIC_OR_PART and message.topic():
            if message.topic() not in self._missing:  # said once: it may be created later
                self._missing.add(message.topic())
                log.info("topic %s not on the broker (yet)", message.topic())
            return False
        if error.fatal() or error.code() in (
            RdKafkaError.TOPIC_AUTHORIZATION_FAILED,
            RdKafkaError.GROUP_AUTHORIZATION_FAILED,
        ):
            raise LibrdkafkaError(describe(error))
        KAFKA_LOG.info("librdkafka: %s", describe(error))
        return False

    def _ingest(self, messages: list[Message]) -> int:
        records: list[Record] = [
            (message.topic(), message.partition(), message.offset(), message.value())  # type: ignore[misc]
            for message in messages
        ]
        keys = [message.key() for message in messages]
        # within a partition the offsets ascend: its last record's is kept
        offsets = {(topic, partition): offset + 1 for topic, partition, offset, _ in records}
        traced = traced_headers(messages, MAX_LINKS, SCANNED_FOR_TRACES * len(offsets))
        quarantined = self._projection.untrusted_records
        with batch_span(traced, len(records)):
            stored = self._projection.ingest(records, offsets, wait=False, keys=keys)
        self.records_seen += len(records)
        self.envelopes_stored += stored
        self.records_quarantined += self._projection.untrusted_records - quarantined
        return stored

    def rewind_to_stored(self) -> None:
        """After a failed batch: read again from the stored offsets (done at the next poll,
        where a broker that does not answer is an error the consume loop waits out)."""
        self._rewind = True

    def _rewind_now(self) -> None:
        for tp in self._membership.positions():
            self._consumer.seek(tp)
        self._rewind = False

    def close(self) -> None:
        try:
            self._consumer.close()
        except RuntimeError:  # closed already
            return


def _headers_of(record: Any) -> Any:
    headers = record.headers
    return headers() if callable(headers) else headers


def traced_headers(
    batch: Sequence[Any], wanted: int, scanned: int = SCANNED_FOR_TRACES
) -> list[Any]:
    """The headers of (at most `wanted`) records carrying a traceparent among the first
    `scanned` records of `batch` (librdkafka messages or records with a `headers` list)."""
    headers = []
    for record in batch[:scanned]:
        found = _headers_of(record)
        if found and any(name == HEADER_TRACEPARENT for name, _ in found):
            headers.append(found)
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
