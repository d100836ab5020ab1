"""The verify core: every check over (header, records), as a function of bytes only.

Per record: decode, canonical encoding, the platform `ChainVerifier` (event id, hash,
prev_hash chain, Ed25519 signature against the consortium key ring, signer site, version
gaps, forks) with the consortium's authorship policy (the event type belongs to the record's
topic, the author site holds a role entitled to author it, one author site per stream: the
checks every consumer runs before it applies a record), the COI's partition (topics are keyed
and co-partitioned by COI) and offset continuity within the exported extents. At the end:
partitions whose last record is not the extent's last offset, streams that still miss
versions below their last one, and DINs bound to more than one COI (invariant I1: the facts
of two chains name one unit as their own, chain/identity.py; only records without a break of
their own count).

Signatures (issue 15 item 5): by default the event signatures are deferred to the end and an
event whose stream's hash chain reaches a head committed by a verified checkpoint is not
checked one by one: the checkpoint's signature proves the chain up to that head, and, since
signatures are outside the envelope hash, the digest of the stream's signatures committed
with that head proves each event's signature bytes (`covered_signatures` says exactly when;
a head without a digest, or one the history's signatures do not reproduce, gets every event
of its stream checked). The breaks are those of checking every signature as it is read
(`check_every_signature=True`, `v2v audit verify --check-every-signature`). The summary
counts the signatures checked and the events covered.

Parallel signatures (issue 18 item 5): in both modes the Ed25519 checks are deferred
(`check_every_signature` then only means that no checkpoint skips any) and made in `workers`
processes (parallel_signatures.py; 1: in this process), in chunks: with every signature
checked, each chunk is handed over as soon as it is full, so the workers verify while this
process reads on. The outcome does not depend on `workers`: the breaks are the same, in the
same order (with every signature checked, a signature break takes the place it had when
checked as read: after the record's event id, hash and signer-site breaks), and a record whose
signature fails binds no DIN either way.

Nothing raises: every problem is a `Break`, so an auditor sees all of them in one pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.merkle import signature_digest
from v2v_platform.envelope.authorship import AUTHORSHIP, AuthorshipPolicy
from v2v_platform.envelope.codec import decode, encode
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import (
    CHECK_DECODE,
    CHECK_EVENT_ID,
    CHECK_HASH,
    CHECK_SIGNER_SITE,
    Break,
    DeferredSignature,
    Location,
)
from v2v_projection.audit.checkpoints import (
    CHECK_CHECKPOINT,
    CHECK_CHECKPOINT_HEAD,
    CHECK_CHECKPOINT_ROOT,
    CHECK_CHECKPOINT_SIGNER,
    CHECK_EXTERNAL_CHECKPOINT,
    CheckpointAudit,
    Coverage,
    StreamIndex,
    is_checkpoint_topic,
)
from v2v_projection.audit.parallel_signatures import CHUNK, SignatureChecks
from v2v_projection.audit.sources import partition_for
from v2v_projection.chain.identity import BINDERS, DinIndex, in_binding_order
from v2v_projection.chain.times import iso, stamp_ns
from v2v_projection.gc_pause import gc_paused
from v2v_projection.history_file import Extent, HistoryFileError, HistoryHeader, HistoryRecord

CHECK_FILE = "file"
CHECK_EXTENT = "extent"
CHECK_OFFSET = "offset"
CHECK_PARTITION = "partition"
CHECK_ENCODING = "encoding"
CHECK_OPEN_GAP = "open_gap"
CHECK_IDENTITY = "identity"

PartitionKey = tuple[str, int]
# the breaks `verify_envelope` gives before a record's signature break
_BEFORE_SIGNATURE = frozenset({CHECK_EVENT_ID, CHECK_HASH, CHECK_SIGNER_SITE})

__all__ = [
    "CHECK_CHECKPOINT",
    "CHECK_CHECKPOINT_HEAD",
    "CHECK_CHECKPOINT_ROOT",
    "CHECK_CHECKPOINT_SIGNER",
    "CHECK_EXTERNAL_CHECKPOINT",
    "HistoryVerifier",
    "VerifyOutcome",
    "authorship_for",
    "describe",
    "verify_history",
]


@dataclass(frozen=True)
class RenamedTopics(AuthorshipPolicy):
    """The consortium's authorship policy on copies of the context topics under other names
    (`renamed`: copy -> the context's topic): the same checks."""

    renamed: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "event_packages", dict(self.renamed))

    def context_of(self, topic: str) -> str | None:
        return super().context_of(self.renamed.get(topic, topic))


def authorship_for(topics: Iterable[str]) -> AuthorshipPolicy:
    """The policy for the audited topics: a topic whose name ends with a context's topic name
    after `v2v.` (`<prefix>.<context>.events.v1` or `<prefix>-<context>.events.v1`, e.g. a
    test run's `v2v.audit-1a2b-release.events.v1`) carries that context's events; any other
    topic has no authorship rule (each of its records is a break)."""
    renamed = {}
    for topic in topics:
        for context in CONTEXTS:
            standard = topic_for(context)
            ending = standard.removeprefix("v2v.")
            copy = topic != standard and topic.endswith(ending)
            if copy and topic[: -len(ending)][-1:] in (".", "-"):
                renamed[topic] = standard
    return RenamedTopics(renamed=renamed) if renamed else AUTHORSHIP


@dataclass
class VerifyOutcome:
    records: int = 0
    aggregates: int = 0
    duplicates: int = 0
    checkpoints: int = 0
    signatures_checked: int = 0
    covered_by_checkpoints: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.breaks

    def breaks_by_check(self) -> dict[str, int]:
        return dict(sorted(Counter(b.check for b in self.breaks).items()))

    def summary(self) -> str:
        by_check = ", ".join(f"{check} {count}" for check, count in self.breaks_by_check().items())
        checkpoints = f" {self.checkpoints} checkpoints," if self.checkpoints else ""
        return (
            f"{self.records} records, {self.aggregates} aggregates, {self.duplicates} duplicates,"
            f"{checkpoints} {len(self.breaks)} breaks"
            + (f" ({by_check})" if by_check else "")
            + f"; {self.signatures_checked} signatures checked,"
            f" {self.covered_by_checkpoints} events covered by checkpoints"
        )


class OffsetContinuity:
    """Each partition's records must be exactly the offsets start, start+1, ..., end-1."""

    def __init__(self, extents: Iterable[Extent]) -> None:
        self._extents: dict[PartitionKey, Extent] = {(e.topic, e.partition): e for e in extents}
        self._last: dict[PartitionKey, int] = {}

    def check(self, record: HistoryRecord, envelope: Envelope | None) -> list[Break]:
        key = (record.topic, record.partition)
        extent = self._extents.get(key)
        if extent is None:
            detail = "this partition is not among the exported extents"
            return [_break(CHECK_EXTENT, record, envelope, detail)]
        expected = self._last.get(key, extent.start - 1) + 1
        self._last[key] = record.offset
        breaks = []
        if not extent.start <= record.offset < extent.end:
            detail = f"offset outside the exported extent [{extent.start}, {extent.end})"
            breaks.append(_break(CHECK_EXTENT, record, envelope, detail))
        if record.offset != expected:
            detail = f"expected offset {expected} after the previous record, got {record.offset}"
            breaks.append(_break(CHECK_OFFSET, record, envelope, detail))
        return breaks

    def finish(self) -> list[Break]:
        breaks = []
        for key, extent in sorted(self._extents.items()):
            last = self._last.get(key, extent.start - 1)
            if last != extent.end - 1:
                location = Location(extent.topic, extent.partition, last)
                detail = (
                    f"the partition's records end at offset {last}; its extent"
                    f" [{extent.start}, {extent.end}) ends at {extent.end - 1}"
                )
                breaks.append(Break(CHECK_OFFSET, location, "", 0, detail))
        return breaks


class OpenGaps:
    """Versions seen per stream, to report at the end the gaps that never closed."""

    def __init__(self) -> None:
        self._seen: dict[str, set[int]] = {}
        self._latest: dict[str, tuple[int, Location]] = {}

    def add(self, envelope: Envelope, location: Location) -> None:
        stream, version = envelope.aggregate_id, envelope.aggregate_version
        self._seen.setdefault(stream, set()).add(version)
        if version > self._latest.get(stream, (0, location))[0]:
            self._latest[stream] = (version, location)

    def finish(self) -> list[Break]:
        breaks = []
        for stream, (last, location) in sorted(self._latest.items()):
            missing = sorted(set(range(1, last)) - self._seen[stream])
            if missing:
                detail = f"versions {_ranges(missing)} never arrived before the last version {last}"
                breaks.append(Break(CHECK_OPEN_GAP, location, stream, last, detail))
        return breaks


class DinBindings:
    """The DINs the history's records bind to COIs; each DIN bound to a second COI is a
    break, at the first record binding it to that COI (first = earliest clinical time)."""

    def __init__(self) -> None:
        self._index = DinIndex()

    def add(self, envelope: Envelope, location: Location) -> None:
        binder = BINDERS.get(envelope.event_type)
        if binder is None:
            return
        try:
            dins = binder(envelope.payload)
        except DecodeError:
            return  # not this event type's payload: the record's other checks say so
        record = (location, envelope.aggregate_id, envelope.aggregate_version)
        at_ns = stamp_ns(envelope.occurred_at)
        for din in dins:
            if din:
                self._index.bind(
                    din, envelope.coi, at_ns, envelope.event_id, envelope.site_id, record
                )

    def finish(self) -> list[Break]:
        breaks = []
        for din, conflict in self._index.conflicts():
            (first_coi, first), *others = in_binding_order(conflict)
            for coi, binding in others:
                location, aggregate_id, version = binding.ref
                detail = (
                    f"DIN {din} is bound to COI {coi} here ({binding.din} by {binding.site_id}"
                    f" {iso(binding.at_ns)}) and to COI {first_coi} ({first.din} by"
                    f" {first.site_id} {iso(first.at_ns)}, at {first.ref[0]}): one DIN, one"
                    " patient (I1)"
                )
                breaks.append(Break(CHECK_IDENTITY, location, aggregate_id, version, detail))
        return breaks


class HistoryVerifier:
    def __init__(
        self,
        header: HistoryHeader,
        keys: KeyRing,
        authorship: AuthorshipPolicy = AUTHORSHIP,
        external_checkpoints: Iterable[bytes] | None = None,
        check_every_signature: bool = False,
        workers: int = 1,
        chunk: int = CHUNK,
    ) -> None:
        self._keys = keys
        self._every = check_every_signature
        self._chains = StreamIndex(keys, authorship=authorship, defer_signatures=True)
        self._signatures = SignatureChecks(keys, workers, chunk)
        self._chunk = chunk
        # with every signature checked: where each deferred signature's break would have been
        # put in `outcome.breaks` when checked as read (by sequence number)
        self._positions: list[int] = []
        topics = frozenset(e.topic for e in header.extents if not is_checkpoint_topic(e.topic))
        self._checkpoints = CheckpointAudit(keys, authorship, topics)
        self._external = external_checkpoints
        self._offsets = OffsetContinuity(header.extents)
        self._gaps = OpenGaps()
        self._bindings = DinBindings()
        self._unbound: list[tuple[Envelope, Location]] = []
        self._partitions = Counter(extent.topic for extent in header.extents)
        self.outcome = VerifyOutcome()

    def feed(self, record: HistoryRecord) -> None:
        self.outcome.records += 1
        location = Location(record.topic, record.partition, record.offset)
        try:
            envelope: Envelope | None = decode(record.value)
        except DecodeError as error:
            envelope = None
            detail = f"not an envelope: {error}"
            self.outcome.breaks.append(Break(CHECK_DECODE, location, "", 0, detail))
        self.outcome.breaks += self._offsets.check(record, envelope)
        if envelope is not None:
            self.outcome.breaks += self._envelope_checks(record, envelope, location)

    def fail_file(self, error: HistoryFileError) -> None:
        self.outcome.breaks.append(Break(CHECK_FILE, Location(), "", 0, str(error)))

    def close(self) -> None:
        """Ends the signature workers, if any are left (`finish` does when it completes)."""
        self._signatures.close()

    def finish(self) -> VerifyOutcome:
        if self._every:
            self._signatures.add(self._chains.deferred)
            self._chains.deferred = []
            found = self._signatures.finish()
            self.outcome.breaks = _inserted(
                self.outcome.breaks, [(self._positions[number], b) for number, b in found]
            )
            self._bind({b.location for _, b in found})
            self.outcome.breaks += (
                self._offsets.finish()
                + self._gaps.finish()
                + self._bindings.finish()
                + self._checkpoints.finish(self._chains)
            )
            if self._external is not None:
                self.outcome.breaks += self._checkpoints.compare_external(self._external)
            self.outcome.signatures_checked = self._chains.envelopes_seen
        else:
            self.outcome.breaks += (
                self._offsets.finish()
                + self._gaps.finish()
                + self._checkpoints.finish(self._chains)
            )
            if self._external is not None:
                self.outcome.breaks += self._checkpoints.compare_external(self._external)
            self._bind(self._check_signatures())
            self.outcome.breaks += self._bindings.finish()
        self.outcome.signatures_checked += self._checkpoints.chains.envelopes_seen
        self.outcome.aggregates = self._chains.aggregates
        self.outcome.duplicates = (
            self._chains.duplicates_seen + self._checkpoints.chains.duplicates_seen
        )
        self.outcome.checkpoints = self._checkpoints.count
        return self.outcome

    def _bind(self, failed: set[Location]) -> None:
        """The DINs of the records left unbound until their signature was checked, except
        those whose signature failed (as when checked as read)."""
        for envelope, location in self._unbound:
            if location not in failed:
                self._bindings.add(envelope, location)
        self._unbound = []

    def _check_signatures(self) -> set[Location]:
        """The event signatures left for the end (`check_every_signature=False`): each one a
        verified checkpoint does not cover (`covered_signatures`) is checked now. Returns
        where a signature failed. (Checkpoints' own signatures are always checked as fed.)"""
        pending = covered_signatures(
            self._chains.deferred, self._checkpoints.coverage, self.outcome.breaks
        )
        self._chains.deferred = []
        self.outcome.covered_by_checkpoints = pending.covered
        self.outcome.signatures_checked = len(pending.to_check)
        self._signatures.add(pending.to_check)
        found = [b for _, b in self._signatures.finish()]
        self.outcome.breaks += found
        return {b.location for b in found}

    def _envelope_checks(
        self, record: HistoryRecord, envelope: Envelope, location: Location
    ) -> list[Break]:
        checkpoint = is_checkpoint_topic(record.topic)
        if checkpoint:
            breaks = self._checkpoints.feed(envelope, location)
        else:
            deferred = len(self._chains.deferred)
            breaks = self._chains.feed(envelope, location, record.value)
            if self._every and len(self._chains.deferred) > deferred:
                self._positions.append(len(self.outcome.breaks) + _leading(breaks))
                if len(self._chains.deferred) >= self._chunk:
                    self._signatures.add(self._chains.deferred)
                    self._chains.deferred = []
        self._gaps.add(envelope, location)
        if encode(envelope) != record.value:
            detail = "the record's bytes are not the canonical encoding of its envelope"
            breaks.append(_break(CHECK_ENCODING, record, envelope, detail))
        partitions = self._partitions.get(record.topic, 0)
        key, keyed = (envelope.site_id, "site") if checkpoint else (envelope.coi, "COI")
        if partitions and key:
            expected = partition_for(key, partitions)
            if expected != record.partition:
                detail = f"{keyed} {key} is keyed to partition {expected} of {partitions}"
                breaks.append(_break(CHECK_PARTITION, record, envelope, detail))
        if not breaks and not checkpoint and envelope.event_type in BINDERS:
            # bound at the end, unless its deferred signature check fails (as when it is
            # checked as read)
            self._unbound.append((envelope, location))
        return breaks


@dataclass
class PendingSignatures:
    to_check: list[DeferredSignature]
    covered: int


def covered_signatures(
    deferred: Iterable[DeferredSignature],
    coverage: Mapping[str, Coverage],
    breaks: Iterable[Break],
) -> PendingSignatures:
    """Which deferred event signatures still need their Ed25519 check.

    An event needs none when a verified checkpoint (own envelope checks, signer entitled,
    root consistent with its service's checkpoints from sequence 1) committed a head of its
    stream at or after its version, found in the history with the committed hash, the event
    is authored by the checkpoint's signer site, and no break names the stream or that
    service's checkpoint stream: then every version up to the head had its hash recomputed
    and its prev_hash linked to the one before (any failure is a break naming the stream), so
    the checkpoint's one signature proves each of them. Their signature bytes are outside the
    hash: the checkpoint must also have committed, with that head, a digest of the stream's
    signatures equal to the digest of the history's signatures of versions 1 to the head
    (`signature_digest`; one signature per version). Any other event is checked: after the
    committed head, on a stream no checkpoint covers or whose head carries no digest or
    another one, on a stream or checkpoint stream with any break (so a tampered history gets
    every signature check it got before)."""
    named = {found.aggregate_id for found in breaks}
    deferred = list(deferred)
    proven = _signatures_proven(deferred, coverage)
    result = PendingSignatures([], 0)
    for pending in deferred:
        cover = coverage.get(pending.aggregate_id)
        if (
            cover is not None
            and pending.version <= cover.version
            and pending.site_id == cover.site_id
            and pending.aggregate_id in proven
            and pending.aggregate_id not in named
            and cover.checkpoint_stream not in named
        ):
            result.covered += 1
        else:
            result.to_check.append(pending)
    return result


def _signatures_proven(
    deferred: Iterable[DeferredSignature], coverage: Mapping[str, Coverage]
) -> set[str]:
    """The covered streams whose committed signature digest is the digest of the history's
    signatures of versions 1 to the committed head (every version held, each with one
    signature; duplicates with other signature bytes disprove it)."""
    by_stream: dict[str, dict[int, bytes]] = {}
    disproven: set[str] = set()
    for pending in deferred:
        cover = coverage.get(pending.aggregate_id)
        if cover is None or not cover.signatures or pending.version > cover.version:
            continue
        signatures = by_stream.setdefault(pending.aggregate_id, {})
        known = signatures.setdefault(pending.version, pending.signature)
        if known != pending.signature:
            disproven.add(pending.aggregate_id)
    proven = set()
    for stream, signatures in by_stream.items():
        cover = coverage[stream]
        if stream in disproven or len(signatures) != cover.version:
            continue
        digest = b""
        for version in range(1, cover.version + 1):
            signature = signatures.get(version)
            if signature is None:
                break
            digest = signature_digest(digest, signature)
        else:
            if digest == cover.signatures:
                proven.add(stream)
    return proven


def verify_history(
    header: HistoryHeader,
    records: Iterable[HistoryRecord],
    keys: KeyRing,
    on_record: Callable[[], None] | None = None,
    authorship: AuthorshipPolicy | None = None,
    external_checkpoints: Iterable[bytes] | None = None,
    check_every_signature: bool = False,
    workers: int = 1,
    chunk: int = CHUNK,
) -> VerifyOutcome:
    """Every break in the history; a garbled file stops the reading with a `file` break.
    `authorship`: who may author which topic's events (default: the consortium's policy for
    the history's topics, `authorship_for`). `external_checkpoints`: the auditor's copy of
    the checkpoints (envelopes), each of which must be in the history identically.
    `check_every_signature`: verify every event's Ed25519 signature as it is read, instead of
    only those no verified checkpoint covers with their signatures (`covered_signatures`).
    `workers`: processes checking the signatures (1: this one), `chunk` signatures at a time
    (parallel_signatures.py); the outcome is the same for any number."""
    if authorship is None:
        authorship = authorship_for(extent.topic for extent in header.extents)
    verifier = HistoryVerifier(
        header, keys, authorship, external_checkpoints, check_every_signature, workers, chunk
    )
    with gc_paused():
        try:
            try:
                for record in records:
                    verifier.feed(record)
                    if on_record is not None:
                        on_record()
            except HistoryFileError as error:
                verifier.fail_file(error)
            return verifier.finish()
        finally:
            verifier.close()


def describe(found: Break) -> str:
    """str(Break), except for problems of the file itself, which have no record location."""
    if found.location == Location():
        return f"{found.check}: {found.detail}"
    return str(found)


def _break(check: str, record: HistoryRecord, envelope: Envelope | None, detail: str) -> Break:
    location = Location(record.topic, record.partition, record.offset)
    if envelope is None:
        return Break(check, location, "", 0, detail)
    return Break(check, location, envelope.aggregate_id, envelope.aggregate_version, detail)


def _leading(breaks: list[Break]) -> int:
    """How many of a record's chain breaks come before its signature break (`verify_envelope`
    gives the event id, hash and signer-site breaks first)."""
    count = 0
    for found in breaks:
        if found.check not in _BEFORE_SIGNATURE:
            break
        count += 1
    return count


def _inserted(breaks: list[Break], placed: list[tuple[int, Break]]) -> list[Break]:
    """`breaks` with each of `placed` (position in `breaks`, ascending) put at its place."""
    if not placed:
        return breaks
    merged: list[Break] = []
    start = 0
    for position, found in placed:
        merged += breaks[start:position]
        merged.append(found)
        start = position
    merged += breaks[start:]
    return merged


def _ranges(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for number in numbers:
        if spans and spans[-1][1] == number - 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
