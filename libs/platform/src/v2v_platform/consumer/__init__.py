"""Idempotent, verifying Kafka consumption of v2v envelopes, with a quarantine."""

from v2v_platform.consumer.apply import ApplyStats, Delivered, apply_once
from v2v_platform.consumer.consumer import EnvelopeConsumer, checked_records
from v2v_platform.consumer.ledger import (
    GuardedLedger,
    InMemoryLedger,
    PostgresConsumerStore,
    PostgresLedger,
    SqliteConsumerStore,
    SqliteLedger,
)
from v2v_platform.consumer.quarantine import InMemoryQuarantine, QuarantinedRecord, SqlQuarantine
from v2v_platform.consumer.verified import apply_verified

__all__ = [
    "ApplyStats",
    "Delivered",
    "EnvelopeConsumer",
    "GuardedLedger",
    "InMemoryLedger",
    "InMemoryQuarantine",
    "PostgresConsumerStore",
    "PostgresLedger",
    "QuarantinedRecord",
    "SqlQuarantine",
    "SqliteConsumerStore",
    "SqliteLedger",
    "apply_once",
    "apply_verified",
    "checked_records",
]
