"""Publishing to Kafka: idempotent producer, acks=all, and nothing counts until acknowledged.

A record the broker refuses for good (too large, invalid, not authorized: an error kafka-python
marks non-retriable) raises `PublishRefused`, naming the record: publishing it again cannot
succeed. Every other failure raises `PublishFailed` (or the producer's own KafkaError), which
the relay waits out with backoff.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import (
    BrokerNotAvailableError,
    BrokerResponseError,
    DuplicateSequenceNumberError,
    InvalidProducerEpochError,
    KafkaError,
    OutOfOrderSequenceNumberError,
    TopicAlreadyExistsError,
    UnknownError,
    UnknownProducerIdError,
)

PRODUCER_DEFAULTS: dict[str, object] = {
    "acks": "all",
    "enable_idempotence": True,
    "max_in_flight_requests_per_connection": 5,
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "max_request_size": 4 * 1024 * 1024,
    "delivery_timeout_ms": 120_000,
    "request_timeout_ms": 30_000,
}


@dataclass(frozen=True)
class OutboundRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class PublishFailed(RuntimeError):
    """The broker did not acknowledge every record of a batch."""


class PublishRefused(RuntimeError):
    """The broker (or the producer, before sending) refused `record` for good."""

    def __init__(self, record: OutboundRecord, error: KafkaError) -> None:
        self.record = record
        self.error = error
        size = len(record.value)
        super().__init__(f"{record.topic} key={record.key!r} ({size} bytes): {self.reason}")

    @property
    def reason(self) -> str:
        """The error, with kafka-python's description when the broker sent no message."""
        text = str(self.error)
        description = getattr(self.error, "description", "")
        if self.error.args in ((), (None,)) and description:
            return f"{text.removesuffix(': None')}: {description}"
        return text


PASSING_STATES: tuple[type[KafkaError], ...] = (
    BrokerNotAvailableError,  # a broker restarting
    UnknownError,  # an unexpected server error says nothing about the record
    # the idempotent producer's sequence state, not the record
    UnknownProducerIdError,
    OutOfOrderSequenceNumberError,
    DuplicateSequenceNumberError,
    InvalidProducerEpochError,
)
"""Broker errors kafka-python marks non-retriable that describe a passing state, not the record."""


def refused_for_good(error: BaseException) -> bool:
    """Whether the broker's answer is final for this record: a broker error kafka-python marks
    non-retriable (e.g. MessageSizeTooLargeError, also raised by `send` above
    max_request_size), other than the passing states above."""
    return (
        isinstance(error, BrokerResponseError)
        and not error.retriable
        and not isinstance(error, PASSING_STATES)
    )


class KafkaPublisher:
    """`overrides` are kafka-python producer options on top of PRODUCER_DEFAULTS, among them
    the security options (`v2v_platform.kafka_security.client_options`)."""

    def __init__(self, bootstrap: str, client_id: str, **overrides: object) -> None:
        config = {**PRODUCER_DEFAULTS, **overrides}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, **config)

    def publish(self, records: Sequence[OutboundRecord], timeout_s: float = 120.0) -> None:
        """Send every record and return only when the broker acknowledged all of them.
        PublishRefused for the first record refused for good, else PublishFailed for the
        first that failed."""
        futures = [self._send(record) for record in records]
        self._producer.flush(timeout=timeout_s)
        failed: tuple[OutboundRecord, KafkaError] | None = None
        for record, future in zip(records, futures, strict=True):
            try:
                future.get(timeout=timeout_s)
            except KafkaError as error:
                if refused_for_good(error):
                    raise PublishRefused(record, error) from error
                failed = failed or (record, error)
        if failed is not None:
            first, cause = failed
            raise PublishFailed(f"{first.topic} key={first.key!r}: {cause}") from cause

    def _send(self, record: OutboundRecord) -> Any:
        try:
            return self._producer.send(
                record.topic, value=record.value, key=record.key, headers=record.headers
            )
        except KafkaError as error:
            if refused_for_good(error):
                raise PublishRefused(record, error) from error
            raise

    def close(self) -> None:
        self._producer.close()


class TopicMismatch(RuntimeError):
    """An existing topic's partition count breaks co-partitioning."""


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    **client_options: object,
) -> None:
    """Create the topics if absent; refuse if one exists with another partition count.
    `client_options`: the admin client's security options (`kafka_security.client_options`).
    A topic the client may not describe looks absent to it: with ACLs, every service may
    describe every v2v topic (`v2v_platform.kafka_broker`)."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="v2v-topic-admin", **client_options
    )
    try:
        wanted = list(topics)
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name=t, num_partitions=partitions, replication_factor=replication_factor)
            for t in wanted
            if t not in existing
        ]
        if missing:
            # Another process may create them concurrently: the partition check below decides.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        _check_partitions(admin, wanted, partitions)
    finally:
        admin.close()


def _check_partitions(
    admin: KafkaAdminClient, topics: list[str], partitions: int, timeout_s: float = 30.0
) -> None:
    """A freshly created topic may be described before its partitions are known (count 0):
    describe again until every topic shows partitions or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = {
            _topic_name(d): len(d.get("partitions") or []) for d in admin.describe_topics(topics)
        }
        if all(counts.get(topic, 0) > 0 for topic in topics) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for topic in topics:
        count = counts.get(topic, 0)
        if count != partitions:
            raise TopicMismatch(
                f"topic {topic} has {count} partitions; every v2v topic needs"
                f" {partitions} so that topics stay co-partitioned by COI"
            )


def _topic_name(description: dict[str, Any]) -> str:
    """kafka-python names the key 'topic' or (newer describe responses) 'name'."""
    return str(description.get("topic") or description.get("name") or "")
