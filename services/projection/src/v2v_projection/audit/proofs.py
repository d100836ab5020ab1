"""Inclusion proofs of one chain's stream heads in the latest checkpoints (`v2v audit prove`).

For each stream of the COI: the latest checkpoint of the service that published it (its
topic and author site) whose signature verifies and whose root the fold of that service's
checkpoints from sequence 1 reproduces; the stream's head committed there; the history's
envelope hash at that version; and the RFC 6962 audit path of that head's leaf, checked
with `verify_inclusion` against the checkpoint's root. One patient's record is shown intact
with a handful of hashes, without the rest of the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from v2v.checkpoints.v1.checkpoint_pb2 import Checkpoint
from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.envelopes import checkpoint_stream_id, fold_heads, read_checkpoint
from v2v_platform.checkpoints.merkle import (
    Head,
    ProofInvalid,
    inclusion_proof,
    leaf_bytes,
    leaf_hash,
    leaves_of,
    root_of,
    verify_inclusion,
)
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import Location, verify_envelope
from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.history_file import HistoryRecord


@dataclass
class ChainStream:
    """One stream of the chain as the history holds it."""

    aggregate_id: str
    topic: str
    site_id: str
    hashes: list[bytes] = field(default_factory=list)


@dataclass
class Gathered:
    streams: dict[str, ChainStream] = field(default_factory=dict)
    checkpoints: list[Envelope] = field(default_factory=list)


def gather(records: Iterable[HistoryRecord], coi: str) -> Gathered:
    """The chain's streams (hashes by version, in order) and every checkpoint envelope."""
    found = Gathered()
    for record in records:
        try:
            envelope = decode(record.value)
        except DecodeError:
            continue  # verify names it
        if is_checkpoint_topic(record.topic):
            found.checkpoints.append(envelope)
            continue
        if envelope.coi != coi:
            continue
        stream = found.streams.get(envelope.aggregate_id)
        if stream is None:
            stream = ChainStream(envelope.aggregate_id, record.topic, envelope.site_id)
            found.streams[envelope.aggregate_id] = stream
        if envelope.aggregate_version == len(stream.hashes) + 1:
            stream.hashes.append(envelope.hash)
    return found


@dataclass
class Proof:
    aggregate_id: str
    topic: str
    site_id: str
    history_version: int
    sequence: int = 0
    version: int = 0
    head_hash: bytes = b""
    leaf_index: int = -1
    tree_size: int = 0
    root: bytes = b""
    path: list[bytes] = field(default_factory=list)
    error: str = ""

    @property
    def verified(self) -> bool:
        return not self.error

    def to_json(self) -> dict[str, Any]:
        return {
            "aggregate_id": self.aggregate_id,
            "topic": self.topic,
            "site_id": self.site_id,
            "history_version": self.history_version,
            "checkpoint_sequence": self.sequence,
            "version": self.version,
            "head_hash": self.head_hash.hex(),
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "audit_path": [node.hex() for node in self.path],
            "verified": self.verified,
            "error": self.error,
        }


@dataclass(frozen=True)
class Latest:
    """The latest usable checkpoint of one service and the heads it commits to; `problem`
    says why later ones (if any) could not be used."""

    checkpoint: Checkpoint | None
    committed: dict[str, Head]
    problem: str = ""


def latest_checkpoints(checkpoints: Iterable[Envelope], keys: KeyRing) -> dict[str, Latest]:
    """By checkpoint stream: its latest checkpoint that verifies, folded from sequence 1."""
    by_stream: dict[str, dict[int, Envelope]] = {}
    for envelope in checkpoints:
        by_stream.setdefault(envelope.aggregate_id, {}).setdefault(
            envelope.aggregate_version, envelope
        )
    latest = {}
    for stream, envelopes in by_stream.items():
        committed: dict[str, Head] = {}
        usable: Checkpoint | None = None
        problem = ""
        previous = b""
        for sequence in range(1, max(envelopes) + 1):
            found = envelopes.get(sequence)
            if found is None:
                problem = f"checkpoint sequence {sequence} is missing"
                break
            envelope = found
            problem = _unusable(envelope, keys, previous, stream)
            if problem:
                break
            checkpoint = read_checkpoint(envelope)
            heads = fold_heads(committed, checkpoint)
            if checkpoint.tree_size != len(heads) or checkpoint.root != root_of(leaves_of(heads)):
                problem = f"checkpoint sequence {sequence} states a root its fold does not give"
                break
            committed, usable, previous = heads, checkpoint, envelope.hash
        latest[stream] = Latest(usable, committed, problem)
    return latest


def _unusable(envelope: Envelope, keys: KeyRing, previous: bytes, stream: str) -> str:
    sequence = envelope.aggregate_version
    own = verify_envelope(envelope, keys, Location())
    if own:
        return f"checkpoint sequence {sequence} does not verify ({own[0].check})"
    if envelope.prev_hash != previous:
        return f"checkpoint sequence {sequence} does not chain to sequence {sequence - 1}"
    try:
        checkpoint = read_checkpoint(envelope)
    except (ValueError, DecodeError) as error:
        return f"checkpoint sequence {sequence} is not a checkpoint: {error}"
    if checkpoint_stream_id(checkpoint.topic, envelope.site_id) != stream:
        return f"checkpoint sequence {sequence} is not on its signer's checkpoint stream"
    return ""


def prove(found: Gathered, keys: KeyRing) -> list[Proof]:
    """The inclusion proof of every stream of the chain, each verified (or its error)."""
    latest = latest_checkpoints(found.checkpoints, keys)
    return [
        _prove(stream, latest.get(checkpoint_stream_id(stream.topic, stream.site_id)))
        for _, stream in sorted(found.streams.items())
    ]


def _prove(stream: ChainStream, latest: Latest | None) -> Proof:
    proof = Proof(stream.aggregate_id, stream.topic, stream.site_id, len(stream.hashes))
    service = f"the service of {stream.site_id} on {stream.topic}"
    if latest is None or latest.checkpoint is None:
        reason = f" ({latest.problem})" if latest and latest.problem else ""
        proof.error = f"no verified checkpoint of {service}{reason}"
        return proof
    checkpoint = latest.checkpoint
    proof.sequence, proof.tree_size, proof.root = (
        checkpoint.sequence,
        checkpoint.tree_size,
        checkpoint.root,
    )
    head = latest.committed.get(stream.aggregate_id)
    if head is None:
        proof.error = (
            f"checkpoint sequence {checkpoint.sequence} of {service} does not commit this stream"
            " (published after it)"
        )
        return proof
    proof.version = head.version
    if len(stream.hashes) < head.version:
        proof.error = (
            f"the history's stream ends at version {len(stream.hashes)}; checkpoint sequence"
            f" {checkpoint.sequence} committed version {head.version}: truncated"
        )
        return proof
    proof.head_hash = stream.hashes[head.version - 1]
    ordered = sorted(latest.committed)
    proof.leaf_index = ordered.index(stream.aggregate_id)
    leaves = leaves_of(latest.committed)
    proof.path = inclusion_proof(proof.leaf_index, leaves)
    leaf = leaf_hash(leaf_bytes(stream.aggregate_id, head.version, proof.head_hash))
    try:
        verify_inclusion(proof.leaf_index, checkpoint.tree_size, leaf, proof.path, checkpoint.root)
    except ProofInvalid as error:
        proof.error = f"the history's version {head.version} is not the one committed: {error}"
    return proof
