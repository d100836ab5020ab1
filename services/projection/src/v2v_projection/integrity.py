"""`ChainIntegrity`: the integrity of one chain's streams, verified at the time of the call
(`GET /v1/chains/{coi}/integrity`, the console's chain page), with the latest verified
checkpoint of each stream's service when one commits the stream.

Verified now, from the envelopes the projection holds for the chain (the fold's, as stored):
each envelope's event id, hash and Ed25519 signature against the consortium key ring, signer
site = author site, the authorship policy (the site may author its topic's events) and one
author site per stream, prev_hash links and version continuity per stream
(`v2v_platform.envelope.verify.ChainVerifier`). A stream's topic is its event types' package
(`v2v.<context>.events.v1`: the gate refused every record whose event type is not of its
topic). Then, for each stream, the latest verified checkpoint of its service (topic + author
site) from the projection's `CheckpointIndex`: the version it committed (`covers_head`: the
stream's head is that version) and the RFC 6962 inclusion proof of the committed leaf, built
over the checkpoint's committed heads with the hash the chain's envelope of that version has
NOW, verified against the checkpoint's signed root (`merkle.verify_inclusion`). A committed
version the projection does not hold yet (its topic is consumed behind the checkpoints) is
shown, not proven, and is no break.

`breaks` of a stream: what verifying it now found, and a committed head the stream's envelope
contradicts. The chain's `breaks`: every stream's, then what the projection found when it
folded the chain (its `integrity-break` alerts: a broken link, a version missing with later
ones parked). `untrusted_records`: the records naming the COI that the projection refused
(its `untrusted-record` alerts). `clean`: no break and no untrusted record.

The envelopes are copied under the projection's lock and verified outside it; ~60 envelopes
take a few milliseconds (one Ed25519 verification each dominates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from google.protobuf.message import DecodeError

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.merkle import ProofInvalid, leaf_bytes, leaf_hash, verify_inclusion
from v2v_platform.envelope.authorship import AUTHORSHIP, AuthorshipPolicy
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing, KeyRingFile
from v2v_platform.envelope.verify import Break, ChainVerifier, Location
from v2v_platform.scope import Scope
from v2v_projection.chain.alert_kinds import INTEGRITY_BREAK, UNTRUSTED_RECORD
from v2v_projection.chain.times import datetime_ns, iso
from v2v_projection.chain_projection import NoVerifier
from v2v_projection.checkpoint_checks import ring_of
from v2v_projection.checkpoint_index import HeadProof
from v2v_projection.queries import ChainQueries


@runtime_checkable
class HoldsKeyRing(Protocol):
    """A record verifier that can say which key ring it checks against (verifier.py)."""

    def key_ring(self) -> KeyRing: ...


@dataclass
class _Stream:
    aggregate_id: str
    aggregate_type: str
    topic: str
    site_id: str
    hashes: list[bytes] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)


class ChainIntegrity:
    """`keys`: the consortium key ring (a `KeyRingFile` is read again when it changes); by
    default the one the projection's record verifier checks against."""

    def __init__(
        self,
        queries: ChainQueries,
        keys: KeyRing | KeyRingFile | None = None,
        authorship: AuthorshipPolicy = AUTHORSHIP,
    ) -> None:
        self.queries = queries
        self.projection = queries.projection
        self._keys = keys
        self.authorship = authorship

    def keys(self) -> KeyRing:
        if self._keys is not None:
            return ring_of(self._keys)
        verifier = self.projection.verifier
        if isinstance(verifier, HoldsKeyRing):
            return verifier.key_ring()
        raise NoVerifier("chain integrity needs the consortium key ring: give it one")

    def of(self, scope: Scope, coi: str) -> dict[str, Any]:
        """The chain's integrity now (NotFound exactly like `ChainQueries.chain`)."""
        view = self.queries.chain(scope, coi)
        coi = view["coi"]
        envelopes = self.projection.envelopes_of(coi)
        verified_at = datetime.now(UTC)
        streams, breaks = self._verify(envelopes)
        checkpoints = {
            s.aggregate_id: self.projection.checkpoint_proof(s.topic, s.site_id, s.aggregate_id)
            for s in streams
        }
        shown = [_stream(s, checkpoints[s.aggregate_id]) for s in streams]
        folded = [a["detail"] for a in view["alerts"] if a["kind"] == INTEGRITY_BREAK]
        untrusted = sum(1 for a in view["alerts"] if a["kind"] == UNTRUSTED_RECORD)
        every = [*breaks, *(b for s in shown for b in s["breaks"])]
        every += [f"found when folded: {detail}" for detail in folded]
        return {
            "coi": coi,
            "verified_at": iso(datetime_ns(verified_at)),
            "clean": not every and not untrusted,
            "events": len(envelopes),
            "untrusted_records": untrusted,
            "breaks": every,
            "streams": shown,
        }

    def _verify(self, envelopes: list[bytes]) -> tuple[list[_Stream], list[str]]:
        """Every envelope through the chain verifier, by stream; breaks of no stream."""
        chains = ChainVerifier(self.keys(), authorship=self.authorship)
        streams: dict[str, _Stream] = {}
        unreadable: list[str] = []
        for index, data in enumerate(envelopes):
            try:
                envelope = decode(data)
            except DecodeError as error:
                unreadable.append(f"decode: envelope {index + 1} of the chain: {error}")
                continue
            topic = envelope_topic(envelope)
            stream = streams.get(envelope.aggregate_id)
            if stream is None:
                stream = streams[envelope.aggregate_id] = _Stream(
                    envelope.aggregate_id, envelope.aggregate_type, topic, envelope.site_id
                )
            found = chains.feed(envelope, Location(topic), data)
            stream.breaks += [_shown(b) for b in found]
            if envelope.aggregate_version == len(stream.hashes) + 1:
                stream.hashes.append(envelope.hash)
        return sorted(streams.values(), key=_stream_order), unreadable


def _stream_order(stream: _Stream) -> tuple[str, str]:
    return (stream.topic, stream.aggregate_id)


def _shown(found: Break) -> str:
    return f"{found.check}: {found.aggregate_id} v{found.version}: {found.detail}"


def _stream(stream: _Stream, proof: HeadProof | None) -> dict[str, Any]:
    error = _proof_error(stream, proof) if proof is not None else ""
    return {
        "aggregate_id": stream.aggregate_id,
        "aggregate_type": stream.aggregate_type,
        "topic": stream.topic,
        "site_id": stream.site_id,
        "version": len(stream.hashes),
        "hash": stream.hashes[-1].hex() if stream.hashes else "",
        "breaks": stream.breaks + _checkpoint_breaks(stream, proof, error),
        "checkpoint": _checkpoint(stream, proof, error),
    }


def _checkpoint(stream: _Stream, proof: HeadProof | None, error: str) -> dict[str, Any] | None:
    if proof is None:
        return None
    checkpoint, committed = proof.checkpoint, proof.head.version
    return {
        "site_id": checkpoint.site_id,
        "sequence": checkpoint.sequence,
        "recorded_at": checkpoint.recorded_at,
        "version": committed,
        "covers_head": committed == len(stream.hashes),
        "proof_verified": not error,
        "tree_size": checkpoint.tree_size,
        "leaf_index": proof.leaf_index,
        "root": checkpoint.root.hex(),
    }


def _proof_error(stream: _Stream, proof: HeadProof) -> str:
    """Why the committed leaf, built with the chain's envelope hash of the committed version,
    is not proven in the checkpoint's root ("" when it is)."""
    version = proof.head.version
    if version > len(stream.hashes):
        return f"the projection holds the stream up to version {len(stream.hashes)} only"
    leaf = leaf_hash(leaf_bytes(stream.aggregate_id, version, stream.hashes[version - 1]))
    checkpoint = proof.checkpoint
    try:
        verify_inclusion(proof.leaf_index, checkpoint.tree_size, leaf, proof.path, checkpoint.root)
    except ProofInvalid as error:
        return str(error)
    return ""


def _checkpoint_breaks(stream: _Stream, proof: HeadProof | None, error: str) -> list[str]:
    """A committed head the chain's envelope contradicts (not one the projection lacks yet)."""
    if proof is None or not error or proof.head.version > len(stream.hashes):
        return []
    checkpoint = proof.checkpoint
    return [
        f"checkpoint_head: {stream.aggregate_id} v{proof.head.version}: checkpoint sequence"
        f" {checkpoint.sequence} of site {checkpoint.site_id} committed another envelope for"
        f" this version ({error})"
    ]


def envelope_topic(envelope: Envelope) -> str:
    """The topic of a folded envelope: its event type's package."""
    return envelope.event_type.rpartition(".")[0]
