"""The projection's index of signed checkpoints (issue 16): per service (topic + author site,
i.e. per checkpoint stream), the latest verified checkpoint and the stream heads it commits.

Each record of `v2v.checkpoints.v1` passed the gate first (`checkpoint_checks.CheckpointGate`:
hash, signature, signer site, well formed, on its signer's checkpoint stream, signer entitled
to author the checkpoint's topic). Here, as `v2v audit verify` does over a whole history:
- a service's checkpoints are taken in sequence order from 1: a duplicate is skipped, a
  sequence that arrives before its predecessor is parked until it arrives (like the fold's
  versions), another envelope for the latest sequence is a fork (refused);
- each one must chain to its predecessor (prev_hash = the previous checkpoint's hash);
- its changed heads are folded into the service's `HeadTree`, whose size and Merkle root must
  be the ones it states (`checkpoint_checks.root_breaks`); a checkpoint that fails is refused
  and the heads go back to what the latest verified checkpoint committed.
A refused checkpoint is returned (`Refusal`) for the caller to quarantine; the latest verified
checkpoint stays the one before it.

Rebuilding from the projection's store (`check_roots=False`) skips the root checks: every
stored checkpoint was taken after them (a parked one that failed later is in the quarantine,
and the caller leaves it out). Root checks cost O(streams of the service) per checkpoint, as
in the audit; a rebuild costs one leaf hash per committed head.

`proof` gives the inclusion proof of a stream's committed head in its service's latest
checkpoint: the audit path of RFC 6962 from the tree's levels above the leaves, computed once
per latest checkpoint (when first asked) and kept until the next one, so each proof is
O(log n). Memory per committed stream: ~150 bytes of heads and leaf hashes (`HeadTree`), its
aggregate id, and ~80 bytes of levels once a proof was asked for (measured at 100k streams).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from google.protobuf.message import DecodeError

from v2v.checkpoints.v1.checkpoint_pb2 import Checkpoint
from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.envelopes import changed_heads, checkpoint_stream_id, read_checkpoint
from v2v_platform.checkpoints.merkle import Head, HeadTree, leaf_bytes, leaf_hash, node_hash
from v2v_platform.envelope.codec import GENESIS_PREV_HASH
from v2v_platform.envelope.verify import CHECK_FORK, CHECK_PREV_HASH, Break, Location
from v2v_projection.chain.times import iso, stamp_ns
from v2v_projection.checkpoint_checks import CHECK_CHECKPOINT, checkpoint_break, root_breaks


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A service's latest verified checkpoint."""

    stream: str  # the checkpoint stream (aggregate id)
    topic: str
    site_id: str
    sequence: int
    hash: bytes
    recorded_at: str
    tree_size: int
    root: bytes


@dataclass(frozen=True)
class HeadProof:
    """A stream's head as `checkpoint` committed it, with the audit path of its leaf."""

    checkpoint: VerifiedCheckpoint
    head: Head
    leaf_index: int
    path: list[bytes]


class Refusal(NamedTuple):
    """A checkpoint the index refused, with its bytes and where it was read."""

    envelope: Envelope
    raw: bytes
    location: Location
    breaks: list[Break]


class Outcome(NamedTuple):
    new: bool  # taken or parked: to be stored (False: a duplicate, or refused itself)
    refused: list[Refusal]  # this checkpoint, or parked ones that failed when their turn came


class _Parked(NamedTuple):
    envelope: Envelope
    checkpoint: Checkpoint
    raw: bytes
    location: Location


class ServiceCheckpoints:
    """The checkpoints of one service: its committed heads, its latest verified checkpoint,
    the ones parked until their predecessor arrives."""

    def __init__(self) -> None:
        self.tree = HeadTree()
        self.latest: VerifiedCheckpoint | None = None
        self.parked: dict[int, _Parked] = {}
        self._levels: tuple[list[str], list[list[bytes]]] | None = None
        """For proofs of the latest checkpoint: its aggregate ids in tree order and the levels
        of its tree above the leaves (built when first asked)."""

    @property
    def sequence(self) -> int:
        return self.latest.sequence if self.latest is not None else 0

    @property
    def hash(self) -> bytes:
        return self.latest.hash if self.latest is not None else GENESIS_PREV_HASH

    def fold(self, taken: _Parked, check_roots: bool) -> list[Break]:
        """Take the next checkpoint (its sequence follows the latest) or say why not."""
        envelope, checkpoint, location = taken.envelope, taken.checkpoint, taken.location
        if envelope.prev_hash != self.hash:
            detail = (
                f"checkpoint sequence {envelope.aggregate_version} does not chain to"
                f" sequence {self.sequence} (prev_hash)"
            )
            return [checkpoint_break(CHECK_PREV_HASH, envelope, location, detail)]
        changed = changed_heads(checkpoint)
        before = {a: self.tree.heads.get(a) for a, _ in changed} if check_roots else {}
        self.tree.update(changed)
        if check_roots:
            breaks = root_breaks(envelope, checkpoint, location, self.tree)
            if breaks:
                self._restore(before)
                return breaks
        self.latest = VerifiedCheckpoint(
            envelope.aggregate_id,
            checkpoint.topic,
            envelope.site_id,
            envelope.aggregate_version,
            envelope.hash,
            iso(stamp_ns(envelope.recorded_at)) or "",
            checkpoint.tree_size,
            checkpoint.root,
        )
        self._levels = None
        return []

    def _restore(self, before: dict[str, Head | None]) -> None:
        """The heads as they were before a refused checkpoint was folded (rare: a rebuild)."""
        heads = dict(self.tree.heads)
        for aggregate_id, head in before.items():
            if head is None:
                del heads[aggregate_id]
            else:
                heads[aggregate_id] = head
        self.tree = HeadTree()
        self.tree.update(sorted(heads.items()))

    def proof(self, aggregate_id: str) -> HeadProof | None:
        head = self.tree.heads.get(aggregate_id)
        if self.latest is None or head is None:
            return None
        heads = self.tree.heads
        if self._levels is None:
            order = sorted(heads)
            leaves = [_leaf(a, heads[a]) for a in order]
            self._levels = (order, merkle_levels(leaves)[1:])  # leaves: hashed again when asked
        order, upper = self._levels
        index = bisect_left(order, aggregate_id)
        sibling = index ^ 1
        path = [_leaf(order[sibling], heads[order[sibling]])] if sibling < len(order) else []
        if upper:
            path += audit_path(upper, index // 2)
        return HeadProof(self.latest, head, index, path)


class CheckpointIndex:
    """Every service's checkpoints, by checkpoint stream. Not thread-safe (the projection's
    lock guards it)."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceCheckpoints] = {}
        self.taken = 0
        self.parked = 0

    def take(
        self, envelope: Envelope, raw: bytes, location: Location, *, check_roots: bool = True
    ) -> Outcome:
        """One checkpoint envelope (its own checks passed)."""
        try:
            checkpoint = read_checkpoint(envelope)
        except (ValueError, DecodeError) as error:
            found = checkpoint_break(CHECK_CHECKPOINT, envelope, location, str(error))
            return Outcome(False, [Refusal(envelope, raw, location, [found])])
        service = self._services.setdefault(envelope.aggregate_id, ServiceCheckpoints())
        sequence = envelope.aggregate_version
        offered = _Parked(envelope, checkpoint, raw, location)
        if sequence <= service.sequence:
            if sequence == service.sequence and envelope.hash != service.hash:
                return Outcome(False, [_fork(offered)])
            return Outcome(False, [])
        if sequence > service.sequence + 1:
            parked = service.parked.get(sequence)
            if parked is not None:
                forked = [] if parked.envelope.hash == envelope.hash else [_fork(offered)]
                return Outcome(False, forked)
            service.parked[sequence] = offered
            self.parked += 1
            return Outcome(True, [])
        breaks = service.fold(offered, check_roots)
        if breaks:
            return Outcome(False, [Refusal(envelope, raw, location, breaks)])
        self.taken += 1
        return Outcome(True, self._take_parked(service, check_roots))

    def _take_parked(self, service: ServiceCheckpoints, check_roots: bool) -> list[Refusal]:
        refused: list[Refusal] = []
        while service.sequence + 1 in service.parked:
            parked = service.parked.pop(service.sequence + 1)
            self.parked -= 1
            breaks = service.fold(parked, check_roots)
            if breaks:
                refused.append(Refusal(parked.envelope, parked.raw, parked.location, breaks))
                break
            self.taken += 1
        return refused

    def latest(self, topic: str, site_id: str) -> VerifiedCheckpoint | None:
        """The latest verified checkpoint of the service publishing `topic` at `site_id`."""
        service = self._services.get(checkpoint_stream_id(topic, site_id))
        return service.latest if service is not None else None

    def proof(self, topic: str, site_id: str, aggregate_id: str) -> HeadProof | None:
        """The head of `aggregate_id` committed by the latest verified checkpoint of its
        service, with its audit path (None: no verified checkpoint commits the stream)."""
        service = self._services.get(checkpoint_stream_id(topic, site_id))
        return service.proof(aggregate_id) if service is not None else None

    def services(self) -> list[VerifiedCheckpoint]:
        """The latest verified checkpoint of every service that has one."""
        return [s.latest for _, s in sorted(self._services.items()) if s.latest is not None]


def _leaf(aggregate_id: str, head: Head) -> bytes:
    return leaf_hash(leaf_bytes(aggregate_id, head.version, head.hash))


def _fork(offered: _Parked) -> Refusal:
    envelope = offered.envelope
    detail = (
        f"another checkpoint sequence {envelope.aggregate_version} of site"
        f" {envelope.site_id} was already taken"
    )
    found = checkpoint_break(CHECK_FORK, envelope, offered.location, detail)
    return Refusal(envelope, offered.raw, offered.location, [found])


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the RFC 6962 tree over `leaves`, from the leaves up to the root (pairs
    hashed left to right, an odd last node carried up: `merkle.root_of`'s tree)."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        levels.append(paired)
    return levels


def audit_path(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 2.1.1 from the tree's levels (= `merkle.inclusion_proof`
    over the leaves, in O(log n)): each level's sibling, none where the node is carried up."""
    if not 0 <= index < len(levels[0]):
        raise IndexError(f"leaf {index} is not in a tree of {len(levels[0])}")
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return path
