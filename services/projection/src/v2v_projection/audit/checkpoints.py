"""The signed checkpoints of a history (issue 15), as `verify` checks them.

A checkpoint is an ordinary envelope on `v2v.checkpoints.v1` (v2v_platform.checkpoints): it
gets the envelope checks of every record (hash, signature against the key ring, signer site,
chain by prev_hash, version continuity, forks) and, here:
- its payload is a Checkpoint whose sequence is the envelope's version, on the checkpoint
  stream of its signer (aggregate id = uuid5 of topic and signing site), and that site is
  entitled by the authorship policy to author the checkpoint's topic (`checkpoint_signer`);
- folding each service's checkpoints from sequence 1 gives the tree size and Merkle root
  each one states (`checkpoint_root`);
- every head it commits (aggregate, version, hash) is in the history with that hash
  (`checkpoint_head`: a stream that ends before the version is truncated, a different hash
  is rewritten). Events after a checkpoint extend the committed head through the ordinary
  prev_hash checks.
`finish` also records, per event stream, the highest head verified checkpoints committed
and the history holds with that hash, with the digest of the stream's signatures committed
beside it (`coverage`), which lets the verifier skip the signature checks that checkpoint
covers (`verification.covered_signatures`).
With an auditor's external copy (`v2v audit checkpoints pull`), each checkpoint of the copy
must be in the history identically (`external_checkpoint`: missing = dropped or rolled back,
different = forked).
The checks of one checkpoint on its own and of its root live in `v2v_projection.
checkpoint_checks`, shared with the projection's live consumer (checkpoint_index.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from v2v.checkpoints.v1.checkpoint_pb2 import Checkpoint
from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.envelopes import changed_heads, read_checkpoint
from v2v_platform.checkpoints.merkle import HeadTree
from v2v_platform.envelope.authorship import AuthorshipPolicy
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import Break, ChainVerifier, Location, verify_envelope
from v2v_projection.checkpoint_checks import (
    CHECK_CHECKPOINT,
    CHECK_CHECKPOINT_HEAD,
    CHECK_CHECKPOINT_ROOT,
    CHECK_CHECKPOINT_SIGNER,
    CHECK_EXTERNAL_CHECKPOINT,
    checkpoint_breaks,
    is_checkpoint_topic,
    root_breaks,
)
from v2v_projection.checkpoint_checks import checkpoint_break as _break

__all__ = [
    "CHECK_CHECKPOINT",
    "CHECK_CHECKPOINT_HEAD",
    "CHECK_CHECKPOINT_ROOT",
    "CHECK_CHECKPOINT_SIGNER",
    "CHECK_EXTERNAL_CHECKPOINT",
    "CheckpointAudit",
    "Coverage",
    "Seen",
    "StreamIndex",
    "is_checkpoint_topic",
]


class StreamIndex(ChainVerifier):
    """The platform chain verifier, also remembering where each stream's versions were read
    (one topic and partition per stream: records are keyed by COI), for the comparison with
    the checkpointed heads at the end."""

    def __init__(
        self,
        keys: KeyRing,
        authorship: AuthorshipPolicy | None = None,
        *,
        defer_signatures: bool = False,
    ) -> None:
        super().__init__(keys, authorship=authorship, defer_signatures=defer_signatures)
        self._places: dict[str, tuple[str, int, array[int]]] = {}

    def feed(
        self, envelope: Envelope, location: Location, data: bytes | None = None
    ) -> list[Break]:
        breaks = super().feed(envelope, location, data)
        stream, version = envelope.aggregate_id, envelope.aggregate_version
        place = self._places.get(stream)
        if place is None:
            place = self._places[stream] = (location.topic, location.partition, array("q"))
        offsets = place[2]
        if version == len(offsets) + 1:
            offsets.append(location.offset)
        return breaks

    def length(self, stream: str) -> int:
        """How many versions of `stream` were read in order (its head version)."""
        return len(self._hashes.get(stream, ()))

    def hash_of(self, stream: str, version: int) -> bytes:
        chain = self._hashes.get(stream, [])
        return chain[version - 1] if 1 <= version <= len(chain) else b""

    def location_of(self, stream: str, version: int) -> Location:
        place = self._places.get(stream)
        if place is None:
            return Location()
        topic, partition, offsets = place
        if not offsets:
            return Location(topic, partition, -1)
        return Location(topic, partition, offsets[min(version, len(offsets)) - 1])

    def topic_of(self, stream: str) -> str:
        place = self._places.get(stream)
        return place[0] if place else ""


@dataclass
class Seen:
    """A checkpoint read from the history, trusted when its envelope had no break."""

    envelope: Envelope
    checkpoint: Checkpoint
    location: Location
    trusted: bool


@dataclass(frozen=True)
class Coverage:
    """The highest head of a stream that verified checkpoints of one service committed, and
    found in the history with that hash: the stream's versions up to it are proven by the
    checkpoint's signature through the hash chain (see `covered_signatures`)."""

    version: int
    site_id: str
    checkpoint_stream: str
    signatures: bytes = b""
    """The stream's signature digest the checkpoint committed with the head (empty: none)."""


@dataclass
class CheckpointAudit:
    keys: KeyRing
    authorship: AuthorshipPolicy
    audited_topics: frozenset[str]
    chains: ChainVerifier = field(init=False)
    streams: dict[str, dict[int, Seen]] = field(default_factory=dict)
    count: int = 0
    coverage: dict[str, Coverage] = field(default_factory=dict)
    """Filled by `finish`: per event stream, the head its verified checkpoints committed."""

    def __post_init__(self) -> None:
        self.chains = ChainVerifier(self.keys)

    def feed(self, envelope: Envelope, location: Location) -> list[Break]:
        """The envelope checks and the checks of one checkpoint on its own."""
        self.count += 1
        breaks = self.chains.feed(envelope, location)
        try:
            checkpoint = read_checkpoint(envelope)
        except (ValueError, DecodeError) as error:
            return [*breaks, _break(CHECK_CHECKPOINT, envelope, location, str(error))]
        breaks += self._own_checks(envelope, checkpoint, location)
        stream = self.streams.setdefault(envelope.aggregate_id, {})
        if envelope.aggregate_version not in stream:
            stream[envelope.aggregate_version] = Seen(
                envelope, checkpoint, location, trusted=not breaks
            )
        return breaks

    def _own_checks(
        self, envelope: Envelope, checkpoint: Checkpoint, location: Location
    ) -> list[Break]:
        return checkpoint_breaks(envelope, checkpoint, location, self.keys, self.authorship)

    def finish(self, history: StreamIndex) -> list[Break]:
        """Roots from the fold of each service's checkpoints, and heads against the history."""
        breaks: list[Break] = []
        for checkpoint_stream, seen in sorted(self.streams.items()):
            committed = HeadTree()
            covers = True  # until one of this service's checkpoints fails a check
            for sequence in range(1, max(seen) + 1):
                current = seen.get(sequence)
                if current is None or not current.trusted:
                    break  # a gap or a broken checkpoint: the chain checks reported it
                committed.update(changed_heads(current.checkpoint))
                root = _root_check(current, committed)
                covers = covers and not root
                breaks += root
                breaks += self._head_checks(current, history, checkpoint_stream, covers)
        return breaks

    def _cover(
        self, stream: str, version: int, seen: Seen, checkpoint_stream: str, signatures: bytes
    ) -> None:
        known = self.coverage.get(stream)
        if known is None or known.version < version:
            self.coverage[stream] = Coverage(
                version, seen.envelope.site_id, checkpoint_stream, signatures
            )

    def _head_checks(
        self, seen: Seen, history: StreamIndex, checkpoint_stream: str, covers: bool
    ) -> list[Break]:
        checkpoint = seen.checkpoint
        if checkpoint.topic not in self.audited_topics:
            return []
        breaks: list[Break] = []
        by = _by(seen)
        for head in checkpoint.heads:
            before = len(breaks)
            stream, version = head.aggregate_id, head.version
            length = history.length(stream)
            if length < version:
                ends = f"ends at version {length}" if length else "is not in the history"
                detail = (
                    f"the stream {ends}; {by} committed its version {version}: truncated"
                    f" (v{length + 1}-v{version} missing)"
                )
                location = history.location_of(stream, length) if length else seen.location
                breaks.append(Break(CHECK_CHECKPOINT_HEAD, location, stream, version, detail))
            elif not history.hash_of(stream, version):
                continue  # not read in order: the version checks report it
            elif history.hash_of(stream, version) != head.hash:
                detail = f"{by} committed another envelope for this version: rewritten"
                location = history.location_of(stream, version)
                breaks.append(Break(CHECK_CHECKPOINT_HEAD, location, stream, version, detail))
            elif history.topic_of(stream) != checkpoint.topic:
                detail = f"{by} committed this stream on {checkpoint.topic}"
                location = history.location_of(stream, version)
                breaks.append(Break(CHECK_CHECKPOINT_HEAD, location, stream, version, detail))
            if covers and len(breaks) == before and history.hash_of(stream, version) == head.hash:
                self._cover(stream, version, seen, checkpoint_stream, head.signatures)
        return breaks

    def compare_external(self, values: Iterable[bytes]) -> list[Break]:
        """Each checkpoint of the auditor's copy must be in the history, identical."""
        breaks = []
        done: set[tuple[str, int]] = set()
        for value in values:
            try:
                envelope = decode(value)
                checkpoint = read_checkpoint(envelope)
            except (ValueError, DecodeError) as error:
                breaks.append(
                    Break(
                        CHECK_EXTERNAL_CHECKPOINT, Location(), "", 0, f"not a checkpoint: {error}"
                    )
                )
                continue
            key = (envelope.aggregate_id, envelope.aggregate_version)
            if key in done:
                continue
            done.add(key)
            what = (
                f"checkpoint sequence {checkpoint.sequence} of site {envelope.site_id}"
                f" ({checkpoint.topic}) in the external copy"
            )
            own = verify_envelope(envelope, self.keys, Location())
            if own:
                detail = f"{what} does not verify: {'; '.join(b.detail for b in own)}"
                breaks.append(_break(CHECK_EXTERNAL_CHECKPOINT, envelope, Location(), detail))
                continue
            held = self.streams.get(envelope.aggregate_id, {}).get(envelope.aggregate_version)
            if held is None:
                detail = f"{what} is missing from the history: dropped or rolled back"
                breaks.append(_break(CHECK_EXTERNAL_CHECKPOINT, envelope, Location(), detail))
            elif held.envelope.hash != envelope.hash:
                detail = f"{what} differs from the history's checkpoint: forked"
                breaks.append(_break(CHECK_EXTERNAL_CHECKPOINT, envelope, held.location, detail))
        return breaks


def _by(seen: Seen) -> str:
    return (
        f"checkpoint sequence {seen.checkpoint.sequence} of site {seen.envelope.site_id}"
        f" at {seen.location}"
    )


def _root_check(seen: Seen, committed: HeadTree) -> list[Break]:
    return root_breaks(seen.envelope, seen.checkpoint, seen.location, committed)
