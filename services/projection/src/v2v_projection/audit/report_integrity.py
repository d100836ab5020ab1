"""The integrity of one chain for its report (`v2v audit report --keys`): its streams verified
now from the same history the report replays, and the inclusion proofs of their heads in the
latest checkpoints.

One pass: `IntegrityCheck.through` hands every record on (to the replay) after feeding it to
the verifier of `v2v audit verify` (`HistoryVerifier`, the checks `verify_history` runs) and
collecting the chain's streams and the checkpoints as `v2v audit prove` does (`proofs.gather`).
`finish` keeps the breaks that concern the chain: those on one of its streams, those whose
detail names its COI (partition, identity), those on the checkpoint streams of the services
that published its streams (their proofs depend on them), and those that name no stream at
all (a record that is not an envelope, a truncated partition: it may have been one of the
chain's). The proofs are `proofs.prove`'s; a head published after its service's latest
checkpoint, or by a service that has published none, is protected by its hash chain only,
which is no break.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from v2v_platform.checkpoints.envelopes import checkpoint_stream_id
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import Break
from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.audit.proofs import (
    ChainStream,
    Gathered,
    Latest,
    Proof,
    latest_checkpoints,
    prove,
)
from v2v_projection.audit.verification import HistoryVerifier, VerifyOutcome, authorship_for
from v2v_projection.history_file import HistoryHeader, HistoryRecord

VERIFIED = "verified"
AFTER_CHECKPOINT = "after-checkpoint"
NO_CHECKPOINT = "no-checkpoint"
FAILED = "failed"


@dataclass(frozen=True)
class StreamProof:
    """One stream's proof and what it means: `VERIFIED`, `AFTER_CHECKPOINT` (published after
    its service's latest checkpoint), `NO_CHECKPOINT` (its service has published none) or
    `FAILED` (`proof.error` says why)."""

    proof: Proof
    status: str
    problem: str = ""

    @property
    def shown(self) -> str:
        proof = self.proof
        if self.status == VERIFIED:
            later = proof.history_version - proof.version
            text = "proof verified"
            if later > 0:
                text += f" ({later} later versions: protected by their hash chain only)"
            if self.problem:
                text += f"; a later checkpoint is unusable: {self.problem}"
            return text
        if self.status == AFTER_CHECKPOINT:
            return "after the latest checkpoint: protected by its hash chain only"
        if self.status == NO_CHECKPOINT:
            return "no checkpoint of its service yet: protected by its hash chain only"
        if self.problem and self.problem not in proof.error:
            return f"PROOF FAILED: {proof.error}; a later checkpoint is unusable: {self.problem}"
        return f"PROOF FAILED: {proof.error}"


@dataclass
class ChainIntegrity:
    coi: str
    outcome: VerifyOutcome
    streams: dict[str, ChainStream]
    breaks: list[Break]
    proofs: list[StreamProof]
    external_checkpoints: bool = False

    @property
    def records_verified(self) -> int:
        return self.outcome.records

    @property
    def chain_records(self) -> int:
        return sum(len(stream.hashes) for stream in self.streams.values())

    @property
    def failed_proofs(self) -> list[StreamProof]:
        return [p for p in self.proofs if p.status == FAILED]

    @property
    def other_breaks(self) -> int:
        """Breaks elsewhere in the history (other chains' streams, other services' checkpoints)."""
        return len(self.outcome.breaks) - len(self.breaks)

    @property
    def clean(self) -> bool:
        return bool(self.streams) and not self.breaks and not self.failed_proofs


@dataclass
class IntegrityCheck:
    """Verify the history and collect `coi`'s streams and the checkpoints as records pass."""

    header: HistoryHeader
    coi: str
    keys: KeyRing
    external_checkpoints: list[bytes] | None = None
    found: Gathered = field(default_factory=Gathered)

    def __post_init__(self) -> None:
        authorship = authorship_for(extent.topic for extent in self.header.extents)
        self._verifier = HistoryVerifier(
            self.header, self.keys, authorship, self.external_checkpoints
        )

    def through(self, records: Iterable[HistoryRecord]) -> Iterator[HistoryRecord]:
        for record in records:
            self._verifier.feed(record)
            self._collect(record)
            yield record

    def _collect(self, record: HistoryRecord) -> None:
        """`proofs.gather`, one record at a time."""
        try:
            envelope = decode(record.value)
        except DecodeError:
            return
        if is_checkpoint_topic(record.topic):
            self.found.checkpoints.append(envelope)
            return
        if envelope.coi != self.coi:
            return
        stream = self.found.streams.get(envelope.aggregate_id)
        if stream is None:
            stream = ChainStream(envelope.aggregate_id, record.topic, envelope.site_id)
            self.found.streams[envelope.aggregate_id] = stream
        if envelope.aggregate_version == len(stream.hashes) + 1:
            stream.hashes.append(envelope.hash)

    def finish(self) -> ChainIntegrity:
        outcome = self._verifier.finish()
        found = self.found
        if self.external_checkpoints is not None:
            found = Gathered(
                found.streams, [decode(v) for v in self.external_checkpoints if _decodes(v)]
            )
        services = {checkpoint_stream_id(s.topic, s.site_id) for s in found.streams.values()}
        kept = [
            b
            for b in outcome.breaks
            if not b.aggregate_id
            or b.aggregate_id in found.streams
            or b.aggregate_id in services
            or self.coi in b.detail
        ]
        latest = latest_checkpoints(found.checkpoints, self.keys)
        proofs = [
            _classified(proof, latest.get(checkpoint_stream_id(proof.topic, proof.site_id)))
            for proof in prove(found, self.keys)
        ]
        return ChainIntegrity(
            self.coi,
            outcome,
            found.streams,
            kept,
            proofs,
            self.external_checkpoints is not None,
        )


def _decodes(value: bytes) -> bool:
    try:
        decode(value)
    except DecodeError:
        return False
    return True


def _classified(proof: Proof, latest: Latest | None) -> StreamProof:
    """A head after the latest checkpoint is no failure, unless a later checkpoint of its
    service could not be used (it may be the one that committed it)."""
    problem = latest.problem if latest is not None else ""
    if proof.verified:
        return StreamProof(proof, VERIFIED, problem)
    if latest is None:
        return StreamProof(proof, NO_CHECKPOINT)
    if not problem and latest.checkpoint is not None and proof.aggregate_id not in latest.committed:
        return StreamProof(proof, AFTER_CHECKPOINT)
    return StreamProof(proof, FAILED, problem)
