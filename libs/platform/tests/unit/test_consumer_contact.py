"""An idle consumer proves contact with the cluster, so an outage is not taken for progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from v2v_platform.consumer.contact import ContactCheck

OWNED = {TopicPartition("v2v.intake.events.v1", 3), TopicPartition("v2v.intake.events.v1", 1)}


@dataclass
class Cluster:
    """The consumer's side of the cluster: what it owns and whether the coordinator answers."""

    reachable: bool = True
    owned: set[TopicPartition] = field(default_factory=lambda: set(OWNED))
    asked: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def committed(self, partition: TopicPartition, timeout_ms: int) -> Any:
        self.asked.append((partition, timeout_ms))
        if not self.reachable:
            raise KafkaTimeoutError("the group coordinator did not answer")
        return 42


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def test_records_are_proof_enough_and_an_idle_consumer_asks_at_most_every_interval() -> None:
    cluster, clock = Cluster(), Clock()
    contact = ContactCheck(cluster, every_s=10, timeout_ms=5000, clock=clock)
    clock.now = 30
    contact.after_poll({"tp": ["a record"]})
    clock.now = 39
    contact.after_poll({})
    assert cluster.asked == []
    clock.now = 41
    contact.after_poll({})
    contact.after_poll({})
    assert cluster.asked == [(min(OWNED), 5000)]


def test_an_unreachable_coordinator_is_a_transient_error_not_progress() -> None:
    cluster, clock = Cluster(reachable=False), Clock()
    contact = ContactCheck(cluster, every_s=10, clock=clock)
    clock.now = 11
    with pytest.raises(KafkaTimeoutError):
        contact.after_poll({})
    clock.now = 22
    cluster.reachable = True
    contact.after_poll({})
    assert len(cluster.asked) == 2


def test_a_consumer_that_owns_nothing_yet_is_not_asked() -> None:
    cluster, clock = Cluster(owned=set()), Clock()
    contact = ContactCheck(cluster, every_s=10, clock=clock)
    clock.now = 11
    contact.after_poll({})
    assert cluster.asked == []
