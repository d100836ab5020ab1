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
    CheckpointStateError,
    CheckpointStateStore,
    InMemoryRelayState,
    PostgresRelayState,
    PreparedCheckpoint,
    RelayStateStore,
    SqliteRelayState,
)

__all__ = [
    "ChainBroken",
    "ChainHead",
    "CheckpointStateError",
    "CheckpointStateStore",
    "InMemoryRelayState",
    "KafkaPublisher",
    "OutboundRecord",
    "OutboxRelay",
    "PageResult",
    "PostgresRelayState",
    "PreparedCheckpoint",
    "PublishFailed",
    "PublishRefused",
    "PublishingStopped",
    "RelayStateStore",
    "SqliteRelayState",
    "ensure_topics",
]
