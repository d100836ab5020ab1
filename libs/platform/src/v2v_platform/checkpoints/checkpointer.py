"""The relay's checkpointer: every `interval_s` when stream heads changed, and once more when
the relay stops, it publishes the service's next signed checkpoint to `v2v.checkpoints.v1`
(key: the site id) and waits for the broker's acknowledgement.

Written ahead like the outbox: the checkpoint is built (`next_checkpoint`: the root over every
head in the relay state, the heads changed since the previous checkpoint, the relay position)
and stored as prepared before it is published; only after the acknowledgement is it marked
done, atomically with its heads counting as checkpointed. A prepared checkpoint found later
(a crash, or a broker outage, between publishing and marking) is published again from its
stored bytes, never rebuilt, so every copy on the topic is byte-identical.

Bounded: a checkpoint carries every changed head (~110 bytes each), so it is also due, before
the interval, once `max_changed_heads` events were published since the last one (a backlog
published fast over many streams would otherwise make a checkpoint the broker refuses, which
stops the relay). The count of changed heads is bounded by the events published, plus, after a
restart, the heads changed before it (counted once from the state).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC, next_checkpoint
from v2v_platform.checkpoints.merkle import Head
from v2v_platform.envelope.codec import Actor, decode, encode
from v2v_platform.envelope.headers import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_SCHEMA_VERSION,
)
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.relay.publisher import OutboundRecord
from v2v_platform.relay.state import ChainHead, CheckpointStateStore, PreparedCheckpoint

DEFAULT_CHECKPOINT_INTERVAL_S = 60.0
"""V2V_CHECKPOINT_INTERVAL_S: a checkpoint at most this often, when heads changed."""
MAX_CHANGED_HEADS = 2_000
"""A checkpoint is due once this many events were published since the last one: with a page
(at most 500) beyond it, a checkpoint carries at most ~2,500 heads, ~280 KB, far below the
broker's 1 MiB."""


class CheckpointPublisher(Protocol):
    def publish(self, records: Sequence[OutboundRecord]) -> None: ...


@dataclass(frozen=True)
class Published:
    """A checkpoint the broker acknowledged; `republished` when it was a stored one."""

    envelope: Envelope
    republished: bool


class Checkpointer:
    """The checkpoints of the service publishing `topic` with `signer`'s key."""

    def __init__(
        self,
        *,
        state: CheckpointStateStore,
        publisher: CheckpointPublisher,
        signer: SiteSigningKey,
        topic: str,
        actor: Actor,
        interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
        checkpoint_topic: str = CHECKPOINT_TOPIC,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        max_changed_heads: int = MAX_CHANGED_HEADS,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the checkpoint interval must be positive")
        if max_changed_heads <= 0:
            raise ValueError("the changed heads bound must be positive")
        self._state = state
        self._publisher = publisher
        self._signer = signer
        self._topic = topic
        self._actor = actor
        self._interval_s = interval_s
        self._checkpoint_topic = checkpoint_topic
        self._clock = clock
        self._monotonic = monotonic
        self._last = monotonic()
        self._max_changed = max_changed_heads
        self._published_since: int | None = None  # None: not yet counted from the state
        self._maybe_prepared = True  # until the store was asked once, or a publish failed
        self.published_total = 0

    @property
    def checkpoint_topic(self) -> str:
        return self._checkpoint_topic

    def due(self) -> bool:
        """The interval passed, or enough events were published to fill a checkpoint."""
        if self._monotonic() - self._last >= self._interval_s:
            return True
        return self._published_since is not None and self._published_since >= self._max_changed

    def tick(self, published: int = 0) -> list[Published]:
        """What the relay calls after each page (`published`: the events it published): publish
        a prepared checkpoint left over, and, once due, the next checkpoint if heads changed."""
        if self._published_since is None:  # the first page: what changed, before it and in it
            self._published_since = len(self._state.changed_heads())
        else:
            self._published_since += published
        done = self._flush_prepared()
        if self.due():
            self._last = self._monotonic()
            done += self._publish_changes()
        return done

    def checkpoint(self) -> list[Published]:
        """Now, whatever the interval (the relay stopping): a prepared checkpoint left over,
        then the next one if heads changed since the last."""
        done = self._flush_prepared()
        self._last = self._monotonic()
        return done + self._publish_changes()

    def _flush_prepared(self) -> list[Published]:
        if not self._maybe_prepared:
            return []
        prepared = self._state.prepared_checkpoint()
        if prepared is None:
            self._maybe_prepared = False
            return []
        return [self._publish(prepared, republished=True)]

    def _publish_changes(self) -> list[Published]:
        changed = self._state.changed_heads()
        self._published_since = 0
        if not changed:
            return []
        committed = self._state.all_heads()
        envelope, _ = next_checkpoint(
            topic=self._topic,
            committed={a: _head(h) for a, h in committed.items()},
            changed={a: _head(h) for a, h in changed.items()},
            previous=self._state.checkpoint_head(),
            position=self._state.position(),
            signer=self._signer,
            actor=self._actor,
            at=self._clock(),
        )
        prepared = PreparedCheckpoint(
            sequence=envelope.aggregate_version,
            hash=envelope.hash,
            envelope=encode(envelope),
            covers={a: h.version for a, h in changed.items()},
        )
        self._maybe_prepared = True
        self._state.prepare_checkpoint(prepared)
        return [self._publish(prepared, republished=False)]

    def _publish(self, prepared: PreparedCheckpoint, *, republished: bool) -> Published:
        envelope = decode(prepared.envelope)
        record = OutboundRecord(
            self._checkpoint_topic,
            self._signer.site_id.encode(),
            prepared.envelope,
            [
                (HEADER_EVENT_TYPE, envelope.event_type.encode()),
                (HEADER_SCHEMA_VERSION, str(envelope.schema_version).encode()),
                (HEADER_EVENT_ID, envelope.event_id.encode()),
            ],
        )
        self._publisher.publish([record])
        self._state.checkpoint_done(prepared)
        self._maybe_prepared = False
        self.published_total += 1
        return Published(envelope, republished)


def _head(head: ChainHead) -> Head:
    """The relay's chain head as a checkpoint commits it (no signature digest: empty)."""
    return Head(head.version, head.hash, head.signatures or b"")
