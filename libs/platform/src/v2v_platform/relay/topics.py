"""Every v2v topic, created alike wherever topics are created (the relay, `kafka_broker
provision`, the simulator): the same partition count (co-partitioned by COI) and replication."""

from __future__ import annotations

from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.envelope.headers import CONTEXTS, topic_for

EVENT_TOPICS: tuple[str, ...] = tuple(topic_for(context) for context in CONTEXTS)
"""The five contexts' event topics, v2v.<context>.events.v1."""
V2V_TOPICS: tuple[str, ...] = (*EVENT_TOPICS, CHECKPOINT_TOPIC)
"""The event topics and v2v.checkpoints.v1, where every service's relay publishes its signed
checkpoints (issue 15)."""
