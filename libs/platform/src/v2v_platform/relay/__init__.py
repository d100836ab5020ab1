"""The outbox relay: an application's notification log, published to its Kafka topic."""

from v2v_platform.relay.publisher import (
    KafkaPublisher,
    OutboundRecord,
    PublishFailed,
    PublishRefused,
    ensure_topics,
)
from v2v_platform.relay.relay import ChainBroken, OutboxRelay, PageResult, PublishingStopped
from v2v_platform.relay.state import (
    ChainHead,
    InMemoryRelayState,
    PostgresRelayState,
    RelayStateStore,
    SqliteRelayState,
)

__all__ = [
    "ChainBroken",
    "ChainHead",
    "InMemoryRelayState",
    "KafkaPublisher",
    "OutboundRecord",
    "OutboxRelay",
    "PageResult",
    "PostgresRelayState",
    "PublishFailed",
    "PublishRefused",
    "PublishingStopped",
    "RelayStateStore",
    "SqliteRelayState",
    "ensure_topics",
]
