"""The relay's librdkafka producer (confluent-kafka), with `KafkaPublisher`'s guarantees.

`RdKafkaPublisher.publish` returns only when the broker acknowledged every record (acks=all,
idempotent, at most 5 requests in flight, the same limits as `publisher.PRODUCER_DEFAULTS`);
records are partitioned by the Java client's murmur2 of their key, as kafka-python does, so an
event lands on the same partition whichever producer published it (topics stay co-partitioned
by COI). Unlike kafka-python, librdkafka sends, batches and acknowledges on its own threads
without the GIL, and reports only failed deliveries (`delivery.report.only.error`): `flush`
returning 0 with no failure reported means every record of the page is acknowledged.

A failed delivery is told apart as `KafkaPublisher` tells it: its broker error code is mapped to
kafka-python's error class and `publisher.refused_for_good` decides, so a record the broker
refuses for good (too large, not authorized, ...) raises `PublishRefused` naming that record
with the same reason text, and anything else `PublishFailed`, which the relay waits out. After a
failure (or a fatal error of the idempotent producer) the producer is replaced, so nothing of
the failed page is left queued to be counted against the next one.

The V2V_KAFKA_* security settings reach librdkafka as `kafka_security.librdkafka_options` names
them (`process.make_publisher`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, Message, Producer
from kafka.errors import KafkaError, for_code

from v2v_platform.relay.publisher import (
    PRODUCER_DEFAULTS,
    OutboundRecord,
    PublishFailed,
    PublishRefused,
    refused_for_good,
)

log = logging.getLogger(__name__)

LIBRDKAFKA_DEFAULTS: dict[str, object] = {
    "acks": PRODUCER_DEFAULTS["acks"],
    "enable.idempotence": PRODUCER_DEFAULTS["enable_idempotence"],
    "max.in.flight.requests.per.connection": PRODUCER_DEFAULTS[
        "max_in_flight_requests_per_connection"
    ],
    "linger.ms": PRODUCER_DEFAULTS["linger_ms"],
    "batch.size": PRODUCER_DEFAULTS["batch_size"],
    "message.max.bytes": PRODUCER_DEFAULTS["max_request_size"],
    "message.timeout.ms": PRODUCER_DEFAULTS["delivery_timeout_ms"],
    "request.timeout.ms": PRODUCER_DEFAULTS["request_timeout_ms"],
    "partitioner": "murmur2_random",  # the Java client's (and kafka-python's) for keyed records
    "socket.nagle.disable": True,  # kafka-python sets TCP_NODELAY
    "delivery.report.only.error": True,
}
"""librdkafka's names for `publisher.PRODUCER_DEFAULTS`, and what makes it behave alike."""


def kafka_python_error(error: RdKafkaError) -> KafkaError:
    """kafka-python's error for librdkafka's: a broker error code (>= 0) as kafka-python's
    class for that code (what `refused_for_good` knows), a client-side error as a plain
    KafkaError carrying librdkafka's text."""
    code = error.code()
    if code >= 0:
        mapped: KafkaError = for_code(code)()
        return mapped
    return KafkaError(f"{error.name()}: {error.str()}")


class RdKafkaPublisher:
    """The `Publisher` of the relay and the checkpointer on librdkafka. `config`: librdkafka
    configuration on top of LIBRDKAFKA_DEFAULTS, among it the security options
    (`kafka_security.librdkafka_options`)."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        *,
        config: Mapping[str, object] | None = None,
    ) -> None:
        self._config: dict[str, object] = {
            **LIBRDKAFKA_DEFAULTS,
            **(config or {}),
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "on_delivery": self._delivered,
            "error_cb": self._client_error,
            "logger": log,  # librdkafka's log lines through logging, not onto stderr
        }
        self._failures: list[tuple[RdKafkaError, Message]] = []
        self._producer = Producer(self._config)

    def publish(self, records: Sequence[OutboundRecord], timeout_s: float = 120.0) -> None:
        """Send every record and return only when the broker acknowledged all of them.
        PublishRefused for the first record refused for good, else PublishFailed for the
        first that failed."""
        self._failures = []
        produce: Any = self._producer.produce  # its stubs take no list of (str, bytes)
        for record in records:
            try:
                produce(record.topic, record.value, record.key, headers=record.headers)
            except BufferError:  # the local queue is full: let it drain, then once more
                self._producer.poll(0.1)
                self._produce_when_room(record, timeout_s)
            except KafkaException as raised:
                self._refuse_unsent(record, raised, timeout_s)
        remaining = self._producer.flush(timeout_s)
        if remaining:
            self._replace_producer()
            raise PublishFailed(
                f"{remaining} of {len(records)} records not acknowledged within {timeout_s:g}s"
            )
        if self._failures:
            self._raise_failure(records)

    def _produce_when_room(self, record: OutboundRecord, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        produce: Any = self._producer.produce
        while True:
            try:
                produce(record.topic, record.value, record.key, headers=record.headers)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise PublishFailed(
                        f"{record.topic}: the producer's queue stayed full for {timeout_s:g}s"
                    ) from None
                self._producer.poll(0.1)
            except KafkaException as raised:
                self._refuse_unsent(record, raised, timeout_s)

    def _refuse_unsent(
        self, record: OutboundRecord, raised: KafkaException, timeout_s: float
    ) -> None:
        """A record the producer would not take (e.g. larger than message.max.bytes): the
        records before it are flushed (this producer goes on), then PublishRefused or
        PublishFailed."""
        raw: RdKafkaError = raised.args[0]
        if raw.fatal():  # the idempotent producer cannot go on: the next page gets a new one
            self._replace_producer()
        else:
            self._producer.flush(timeout_s)
        self._failures = []
        error = kafka_python_error(raw)
        if refused_for_good(error):
            raise PublishRefused(record, error) from raised
        raise PublishFailed(f"{record.topic} key={record.key!r}: {error}") from raised

    def _raise_failure(self, records: Sequence[OutboundRecord]) -> None:
        failures, self._failures = self._failures, []
        fatal = any(error.fatal() for error, _ in failures)
        if fatal:
            self._replace_producer()
        index = {(r.topic, r.key, r.value): r for r in records}
        first: tuple[OutboundRecord, KafkaError] | None = None
        refused: list[tuple[int, OutboundRecord, KafkaError]] = []
        position = {id(r): n for n, r in enumerate(records)}
        for raw, message in failures:
            record = index.get(
                (message.topic() or "", message.key() or b"", message.value() or b"")
            )
            if record is None:
                continue
            error = kafka_python_error(raw)
            if refused_for_good(error) and not raw.fatal():
                refused.append((position[id(record)], record, error))
            elif first is None or position[id(record)] < position[id(first[0])]:
                first = (record, error)
        if refused:
            _, record, error = min(refused, key=lambda item: item[0])
            raise PublishRefused(record, error)
        if first is None:
            raw, message = failures[0]
            raise PublishFailed(f"{message.topic()}: {raw.name()}: {raw.str()}")
        record, error = first
        raise PublishFailed(f"{record.topic} key={record.key!r}: {error}")

    def _delivered(self, error: RdKafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append((error, message))

    def _client_error(self, error: RdKafkaError) -> None:
        """librdkafka's client-level errors (a broker down, a failed handshake): retried by
        librdkafka itself; a record that cannot be delivered in time fails its page."""
        if error.fatal():
            log.error("relay producer: fatal %s: %s", error.name(), error.str())
        else:
            log.warning("relay producer: %s: %s", error.name(), error.str())

    def _replace_producer(self) -> None:
        """Drop whatever the producer still holds and start a fresh one (a new idempotent
        producer id): the next publish starts clean."""
        old = self._producer
        try:
            old.purge(in_queue=True, in_flight=True, blocking=False)
            old.flush(0)
        except KafkaException as error:  # a fatal producer may refuse even this
            log.debug("relay producer: purge after failure: %s", error)
        self._failures = []
        self._producer = Producer(self._config)

    def close(self) -> None:
        self._producer.flush(5.0)
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        self._producer.flush(0)


def rdkafka_config(publisher: RdKafkaPublisher) -> dict[str, Any]:
    """The producer's configuration without its callbacks (for tests and benchmarks)."""
    return {k: v for k, v in publisher._config.items() if not callable(v)}
