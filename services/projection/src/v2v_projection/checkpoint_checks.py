"""The checks of one signed checkpoint (issue 15) that `v2v audit verify` and the projection's
live consumer share: pure functions of the checkpoint envelope, the key ring, the authorship
policy and (for the root) the heads its service's checkpoints committed so far.

- `checkpoint_breaks`: the payload is a Checkpoint whose sequence is the envelope's version, on
  the checkpoint stream of its signer (aggregate id = uuid5 of topic and signing site), and that
  site is entitled by the authorship policy to author the checkpoint's topic;
- `root_breaks`: folding the service's checkpoints from sequence 1 (`HeadTree`) gives the tree
  size and Merkle root the checkpoint states;
- `CheckpointGate`: the consumers' gate (`EnvelopeGate`: decoding, event id, hash, Ed25519
  signature against the key ring, signer site) with the checkpoint checks in place of the
  context topics' authorship rule.

Moved here from audit/checkpoints.py (which re-exports the names it had).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from v2v.checkpoints.v1.checkpoint_pb2 import Checkpoint
from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.envelopes import (
    CHECKPOINT_AGGREGATE_TYPE,
    CHECKPOINT_TOPIC,
    checkpoint_stream_id,
    read_checkpoint,
)
from v2v_platform.checkpoints.merkle import HeadTree
from v2v_platform.envelope.authorship import AuthorshipPolicy
from v2v_platform.envelope.keys import KeyRing, KeyRingFile
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.envelope.verify import Break, Location, verify_envelope

CHECK_CHECKPOINT = "checkpoint"
CHECK_CHECKPOINT_SIGNER = "checkpoint_signer"
CHECK_CHECKPOINT_ROOT = "checkpoint_root"
CHECK_CHECKPOINT_HEAD = "checkpoint_head"
CHECK_EXTERNAL_CHECKPOINT = "external_checkpoint"


def is_checkpoint_topic(topic: str) -> bool:
    """`v2v.checkpoints.v1`, or a copy of it under another prefix (a test run's
    `v2v.audit-1a2b-checkpoints.v1`)."""
    ending = CHECKPOINT_TOPIC.removeprefix("v2v.")
    return topic == CHECKPOINT_TOPIC or (
        topic.endswith(ending) and topic[: -len(ending)][-1:] in (".", "-")
    )


def checkpoint_break(check: str, envelope: Envelope, location: Location, detail: str) -> Break:
    return Break(check, location, envelope.aggregate_id, envelope.aggregate_version, detail)


def checkpoint_breaks(
    envelope: Envelope,
    checkpoint: Checkpoint,
    location: Location,
    keys: KeyRing,
    authorship: AuthorshipPolicy,
) -> list[Break]:
    """The checks of one checkpoint on its own (beyond its envelope's): well formed, on its
    signer's checkpoint stream, signed by a site entitled to author the checkpoint's topic."""
    breaks = []
    site = envelope.site_id
    expected = checkpoint_stream_id(checkpoint.topic, site)
    problems = []
    if envelope.aggregate_type != CHECKPOINT_AGGREGATE_TYPE:
        problems.append(f"aggregate type {envelope.aggregate_type!r}")
    if checkpoint.sequence != envelope.aggregate_version:
        problems.append(f"sequence {checkpoint.sequence} in a version {envelope.aggregate_version}")
    if problems:
        detail = "not a well-formed checkpoint: " + ", ".join(problems)
        breaks.append(checkpoint_break(CHECK_CHECKPOINT, envelope, location, detail))
    if envelope.aggregate_id != expected:
        detail = (
            f"checkpoint of {checkpoint.topic} signed by {site} on stream"
            f" {envelope.aggregate_id}; that site's checkpoint stream is {expected}"
        )
        breaks.append(checkpoint_break(CHECK_CHECKPOINT_SIGNER, envelope, location, detail))
    context = authorship.context_of(checkpoint.topic)
    if context is None:
        detail = f"checkpoint of {checkpoint.topic!r}, a topic with no authorship rule"
        breaks.append(checkpoint_break(CHECK_CHECKPOINT_SIGNER, envelope, location, detail))
    elif not keys.roles_of(site) & authorship.authors[context]:
        detail = (
            f"site {site} may not author {context} events, so it may not checkpoint"
            f" {checkpoint.topic}"
        )
        breaks.append(checkpoint_break(CHECK_CHECKPOINT_SIGNER, envelope, location, detail))
    return breaks


def root_breaks(
    envelope: Envelope, checkpoint: Checkpoint, location: Location, committed: HeadTree
) -> list[Break]:
    """`committed`: the heads of the checkpoint's service folded from sequence 1 up to and
    including this checkpoint; its size and root must be the ones the checkpoint states."""
    root = committed.root()
    if checkpoint.tree_size == len(committed) and checkpoint.root == root:
        return []
    detail = (
        f"checkpoint sequence {checkpoint.sequence} of site {envelope.site_id} states"
        f" {checkpoint.tree_size} streams, root {checkpoint.root.hex()[:16]}; its service's"
        f" checkpoints from sequence 1 fold to {len(committed)} streams, root {root.hex()[:16]}"
    )
    return [checkpoint_break(CHECK_CHECKPOINT_ROOT, envelope, location, detail)]


class CheckpointGate(EnvelopeGate):
    """The gate of records on the checkpoint topic: `EnvelopeGate.check` (decoding, event id,
    hash, signature against the ring of `events`, signer site) with `checkpoint_breaks` in
    place of the context topics' authorship rule. Stateless, like the gate: the chain of a
    service's checkpoints and their roots are checked where they are folded."""

    def __init__(self, events: EnvelopeGate) -> None:
        super().__init__(KeyRing({}), events.authorship)
        self._events = events

    @property
    def keys(self) -> KeyRing:
        return self._events.keys

    def breaks(self, envelope: Envelope, location: Location) -> list[Break]:
        keys = self.keys
        breaks = verify_envelope(envelope, keys, location)
        try:
            checkpoint = read_checkpoint(envelope)
        except (ValueError, DecodeError) as error:
            return [*breaks, checkpoint_break(CHECK_CHECKPOINT, envelope, location, str(error))]
        return breaks + checkpoint_breaks(envelope, checkpoint, location, keys, self.authorship)


def ring_of(keys: KeyRing | KeyRingFile) -> KeyRing:
    return keys if isinstance(keys, KeyRing) else keys.current()
