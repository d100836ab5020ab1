"""Checkpoints as signed envelopes: one chained stream per service, the root over every head
committed so far, only the changed heads carried, the same inputs giving the same bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.envelopes import (
    CHECKPOINT_AGGREGATE_TYPE,
    CHECKPOINT_EVENT_TYPE,
    CheckpointHead,
    checkpoint_stream_id,
    fold_heads,
    next_checkpoint,
    read_checkpoint,
)
from v2v_platform.checkpoints.merkle import Head, leaves_of, root_of
from v2v_platform.envelope.codec import Actor, encode, envelope_hash
from v2v_platform.envelope.keys import SiteSigningKey

SIGNER = SiteSigningKey.from_seed("GMP-1", bytes(32))
ACTOR = Actor("system", "manufacturing relay", "manufacturing")
AT = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)
TOPIC = "v2v.manufacturing.events.v1"


def head(n: int) -> Head:
    return Head(n, bytes([n]) * 32)


def checkpoint(
    committed: dict[str, Head], changed: dict[str, Head], previous: CheckpointHead
) -> tuple[Envelope, dict[str, Head]]:
    return next_checkpoint(
        topic=TOPIC,
        committed=committed,
        changed=changed,
        previous=previous,
        position=7,
        signer=SIGNER,
        actor=ACTOR,
        at=AT,
    )


def test_checkpoints_chain_and_commit_to_every_head_so_far() -> None:
    first, heads = checkpoint({}, {"b": head(1), "a": head(2)}, CheckpointHead())
    assert first.aggregate_type == CHECKPOINT_AGGREGATE_TYPE
    assert first.event_type == CHECKPOINT_EVENT_TYPE
    assert first.aggregate_id == checkpoint_stream_id(TOPIC, "GMP-1")
    assert first.aggregate_version == 1 and first.prev_hash == b"" and first.site_id == "GMP-1"
    assert first.hash == envelope_hash(first)
    payload = read_checkpoint(first)
    assert [h.aggregate_id for h in payload.heads] == ["a", "b"]
    assert payload.tree_size == 2 and payload.root == root_of(leaves_of(heads))

    second, after = checkpoint(heads, {"c": head(3), "a": head(4)}, CheckpointHead(1, first.hash))
    payload = read_checkpoint(second)
    assert second.aggregate_version == 2 and second.prev_hash == first.hash
    assert [(h.aggregate_id, h.version) for h in payload.heads] == [("a", 4), ("c", 3)]
    assert payload.tree_size == 3 and payload.root == root_of(leaves_of(after))
    assert fold_heads(fold_heads({}, read_checkpoint(first)), payload) == after


def test_the_same_inputs_give_the_same_bytes() -> None:
    once, _ = checkpoint({}, {"a": head(1)}, CheckpointHead())
    again, _ = checkpoint({}, {"a": head(1)}, CheckpointHead())
    assert encode(once) == encode(again)
    assert checkpoint_stream_id(TOPIC, "GMP-2") != checkpoint_stream_id(TOPIC, "GMP-1")
