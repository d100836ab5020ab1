"""librdkafka (confluent-kafka) for the projection's and the audit's reading (ADR 0012).

What the projection's consumer, its catch-up measurement and the audit's Kafka source share:

- `librdkafka_config(options)`: client options in librdkafka's names. The platform's security
  settings map to them through `v2v_platform.kafka_security.librdkafka_options(settings)`;
  options a caller still holds in kafka-python's names (`kafka_security.client_options`) are
  renamed, so both describe the same security.
- `translated()`: a librdkafka error (confluent_kafka.KafkaException) raised as a
  `LibrdkafkaError`, a kafka-python `KafkaError`: the runtime's transient errors
  (`service_runtime.TRANSIENT`) and the audit's error handling stay what they were.
- `BrokerErrors`: librdkafka reports a lost cluster and refused credentials through its error
  callback, not by failing a poll; the consumer raises them from its next empty poll.
- `offsets_of(admin, topics)`: the beginning and end (read_committed) offsets of every
  partition of the topics, in one ListOffsets round per kind (AdminClient.list_offsets).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from kafka.errors import KafkaError

KAFKA_LOG = logging.getLogger("v2v.kafka")
"""librdkafka's own log lines (instead of its default: stderr)."""

Partition = tuple[str, int]
EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]

RENAMED: dict[str, str] = {
    "security_protocol": "security.protocol",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "sasl_mechanism": "sasl.mechanisms",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
}
"""kafka-python's security option -> librdkafka's (`ssl_check_hostname` is handled apart)."""

RAISED_WHEN_IDLE = frozenset(
    {
        RdKafkaError._ALL_BROKERS_DOWN,
        RdKafkaError._AUTHENTICATION,
        RdKafkaError._SSL,
        RdKafkaError.SASL_AUTHENTICATION_FAILED,
        RdKafkaError.GROUP_AUTHORIZATION_FAILED,
        RdKafkaError.TOPIC_AUTHORIZATION_FAILED,
    }
)
"""Errors of the error callback that mean no record can arrive (the others, such as one idle
connection the broker closed, librdkafka recovers from by itself)."""


class LibrdkafkaError(KafkaError):  # type: ignore[misc]
    """A librdkafka error, as the kafka-python error the services already wait out."""

    retriable = True


@contextmanager
def translated() -> Iterator[None]:
    """Raise librdkafka's KafkaException as `LibrdkafkaError` (its message kept)."""
    try:
        yield
    except KafkaException as error:
        raise LibrdkafkaError(describe(error)) from error


def describe(error: KafkaException | RdKafkaError) -> str:
    found = error.args[0] if isinstance(error, KafkaException) and error.args else error
    if isinstance(found, RdKafkaError):
        return f"{found.name()}: {found.str()}"
    return str(found)


def librdkafka_config(options: Mapping[str, object] | None) -> dict[str, object]:
    """`options` in librdkafka's names: names with a dot pass through, kafka-python's security
    names are renamed; any other kafka-python name is refused (ValueError)."""
    config: dict[str, object] = {}
    for name, value in (options or {}).items():
        if name == "ssl_check_hostname":
            config["ssl.endpoint.identification.algorithm"] = "https" if value else "none"
        elif name in RENAMED:
            config[RENAMED[name]] = value
        elif "." in name:
            config[name] = value
        else:
            raise ValueError(f"Kafka client option {name!r} has no librdkafka equivalent here")
    return config


def client_config(bootstrap: str, options: Mapping[str, object] | None) -> dict[str, Any]:
    """The common part of every librdkafka client's configuration."""
    return {
        "bootstrap.servers": bootstrap,
        "logger": KAFKA_LOG,
        "log.connection.close": False,  # an idle connection the broker closed is no news
        **librdkafka_config(options),
    }


class BrokerErrors:
    """The error callback's errors that mean no record can arrive, kept until raised."""

    def __init__(self) -> None:
        self._pending: RdKafkaError | None = None

    def record(self, error: RdKafkaError) -> None:
        if error.fatal() or error.code() in RAISED_WHEN_IDLE:
            self._pending = error
        else:
            KAFKA_LOG.info("librdkafka: %s", describe(error))

    def clear(self) -> None:
        self._pending = None

    def raise_pending(self) -> None:
        error, self._pending = self._pending, None
        if error is not None:
            raise LibrdkafkaError(describe(error))


def open_admin(bootstrap: str, options: Mapping[str, object] | None) -> AdminClient:
    config = client_config(bootstrap, options)
    config.pop("logger")  # an admin client serves its log queue only when polled: stderr
    return AdminClient(config)


def partitions_of(
    admin: AdminClient, topics: Sequence[str], timeout_s: float
) -> tuple[list[TopicPartition], set[str]]:
    """The partitions of those of `topics` the broker has (in order), and the names it has."""
    with translated():
        metadata = admin.list_topics(timeout=timeout_s)
    known = {name for name, topic in metadata.topics.items() if topic.error is None}
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        if topic in known
        for partition in sorted(metadata.topics[topic].partitions)
    ]
    return partitions, known


def list_offsets(
    admin: AdminClient,
    partitions: Sequence[TopicPartition],
    spec: Any,
    timeout_s: float,
    isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
) -> dict[Partition, int]:
    """One offset per partition (`spec`: EARLIEST / LATEST), by default read_committed: the
    end of a partition is its last stable offset, as a read_committed consumer sees it."""
    if not partitions:
        return {}
    with translated():
        futures = admin.list_offsets(
            {TopicPartition(tp.topic, tp.partition): spec for tp in partitions},
            isolation_level=isolation,
            request_timeout=timeout_s,
        )
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}


def offsets_of(
    admin: AdminClient, topics: Sequence[str], timeout_s: float
) -> tuple[dict[Partition, int], dict[Partition, int]]:
    """The beginning and end offsets of every partition of `topics` the broker has."""
    partitions, _ = partitions_of(admin, topics, timeout_s)
    beginning = list_offsets(admin, partitions, EARLIEST, timeout_s)
    end = list_offsets(admin, partitions, LATEST, timeout_s)
    return beginning, end
