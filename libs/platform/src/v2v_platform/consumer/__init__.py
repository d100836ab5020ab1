"""Idempotent Kafka consumption of v2v envelopes."""

from v2v_platform.consumer.consumer import ApplyStats, Delivered, EnvelopeConsumer, apply_once
from v2v_platform.consumer.ledger import (
    InMemoryLedger,
    PostgresConsumerStore,
    PostgresLedger,
    SqliteConsumerStore,
    SqliteLedger,
)

__all__ = [
    "ApplyStats",
    "Delivered",
    "EnvelopeConsumer",
    "InMemoryLedger",
    "PostgresConsumerStore",
    "PostgresLedger",
    "SqliteConsumerStore",
    "SqliteLedger",
    "apply_once",
]
