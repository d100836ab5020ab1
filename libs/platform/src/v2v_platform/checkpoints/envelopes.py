"""Checkpoints as envelopes: one stream of checkpoints per service (topic + site), each an
ordinary signed envelope whose payload is a `v2v.checkpoints.v1.Checkpoint` and whose
prev_hash is the previous checkpoint's hash. Publisher (the relay) and verifier
(`v2v audit verify`) both build and read them through this module only.

`next_checkpoint` is pure: given the heads committed so far and the heads changed since, it
returns the sealed envelope and the new committed heads; the same inputs give the same bytes
(the relay republishes a prepared checkpoint byte-identical after a crash).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from v2v.checkpoints.v1.checkpoint_pb2 import Checkpoint, StreamHead
from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.merkle import Head, leaves_of, root_of
from v2v_platform.envelope.codec import GENESIS_PREV_HASH, Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey

CHECKPOINT_TOPIC = "v2v.checkpoints.v1"
CHECKPOINT_AGGREGATE_TYPE = "Checkpoints"
CHECKPOINT_EVENT_TYPE = Checkpoint.DESCRIPTOR.full_name
CHECKPOINT_NAMESPACE = uuid.UUID("3b8e5f0a-1c2d-5e4f-8a9b-0c1d2e3f4a5b")


def checkpoint_stream_id(topic: str, site_id: str) -> str:
    """The aggregate id of the checkpoint stream of the service publishing `topic` at `site_id`."""
    return str(uuid.uuid5(CHECKPOINT_NAMESPACE, f"checkpoints:{topic}:{site_id}"))


@dataclass(frozen=True)
class CheckpointHead:
    """The latest checkpoint of one stream of checkpoints (sequence 0: none yet)."""

    sequence: int = 0
    hash: bytes = GENESIS_PREV_HASH


def next_checkpoint(
    *,
    topic: str,
    committed: Mapping[str, Head],
    changed: Mapping[str, Head],
    previous: CheckpointHead,
    position: int,
    signer: SiteSigningKey,
    actor: Actor,
    at: datetime,
) -> tuple[Envelope, dict[str, Head]]:
    """The sealed envelope of the checkpoint after `previous`, committing to `committed`
    updated by `changed`, and that full set of heads."""
    heads = {**committed, **changed}
    payload = Checkpoint(
        topic=topic,
        sequence=previous.sequence + 1,
        heads=[
            StreamHead(
                aggregate_id=a,
                version=changed[a].version,
                hash=changed[a].hash,
                signatures=changed[a].signatures,
            )
            for a in sorted(changed)
        ],
        tree_size=len(heads),
        root=root_of(leaves_of(heads)),
        position=position,
    )
    content = EnvelopeContent(
        coi="",
        aggregate_type=CHECKPOINT_AGGREGATE_TYPE,
        aggregate_id=checkpoint_stream_id(topic, signer.site_id),
        aggregate_version=payload.sequence,
        payload=payload,
        schema_version=1,
        recorded_at=at,
        site_id=signer.site_id,
        actor=actor,
        signature_meaning="authorship",
    )
    return build_envelope(content, previous.hash, signer), heads


def read_checkpoint(envelope: Envelope) -> Checkpoint:
    """The checkpoint an envelope carries (ValueError when it carries none)."""
    if envelope.event_type != CHECKPOINT_EVENT_TYPE:
        raise ValueError(f"{envelope.event_type} is not a checkpoint")
    checkpoint = Checkpoint()
    checkpoint.ParseFromString(envelope.payload)
    return checkpoint


def changed_heads(checkpoint: Checkpoint) -> list[tuple[str, Head]]:
    """The heads `checkpoint` changed, as (aggregate id, head)."""
    return [
        (head.aggregate_id, Head(head.version, head.hash, head.signatures))
        for head in checkpoint.heads
    ]


def fold_heads(committed: Mapping[str, Head], checkpoint: Checkpoint) -> dict[str, Head]:
    """`committed` updated by the heads `checkpoint` changed."""
    return {**committed, **dict(changed_heads(checkpoint))}
