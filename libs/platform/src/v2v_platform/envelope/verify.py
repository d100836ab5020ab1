"""Verification of envelopes: per-envelope checks and per-aggregate chain continuity.

Every problem is reported as a `Break` naming the check that failed and where it happened;
nothing is raised, so an auditor sees every break in one pass. The consumers' gate
(`v2v_platform.envelope.trust.EnvelopeGate`) runs the same checks on every record before it is
applied: `verify_envelope`, the authorship policy and one author site per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from google.protobuf.message import DecodeError

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.envelope.codec import (
    GENESIS_PREV_HASH,
    decode,
    envelope_hash,
    event_id_for,
    hash_matches,
)
from v2v_platform.envelope.keys import KeyRing

if TYPE_CHECKING:
    from v2v_platform.envelope.authorship import AuthorshipPolicy

CHECK_DECODE = "decode"
CHECK_EVENT_ID = "event_id"
CHECK_HASH = "hash"
CHECK_SIGNATURE = "signature"
CHECK_SIGNER_SITE = "signer_site"
CHECK_PREV_HASH = "prev_hash"
CHECK_VERSION_GAP = "version_gap"
CHECK_FORK = "fork"
CHECK_EVENT_TYPE = "event_type"
CHECK_AUTHORSHIP = "authorship"
CHECK_STREAM_AUTHOR = "stream_author"


class Location(NamedTuple):
    """Where an envelope was read: a Kafka position or an index in an export file. (A named
    tuple: one is made per record verified.)"""

    topic: str = ""
    partition: int = -1
    offset: int = -1

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Break:
    check: str
    location: Location
    aggregate_id: str
    version: int
    detail: str

    def __str__(self) -> str:
        return (
            f"{self.check} at {self.location}: aggregate {self.aggregate_id or '?'}"
            f" v{self.version}: {self.detail}"
        )


def _break(check: str, envelope: Envelope, location: Location, detail: str) -> Break:
    return Break(check, location, envelope.aggregate_id, envelope.aggregate_version, detail)


class DeferredSignature(NamedTuple):
    """An envelope's Ed25519 check left for later (`verify_envelope(check_signature=False)`):
    the verifier decides at the end whether a signed checkpoint already covers the envelope
    (its hash chain reaches a committed head) or checks it with `deferred_signature_breaks`.
    (A named tuple: one is kept per record verified.)"""

    key_id: str
    digest: bytes
    signature: bytes
    location: Location
    aggregate_id: str
    version: int
    site_id: str


def deferred_signature_breaks(deferred: DeferredSignature, keys: KeyRing) -> list[Break]:
    """The signature check `verify_envelope` left out, with the break it would have given."""
    if keys.verify(deferred.key_id, deferred.digest, deferred.signature):
        return []
    detail = f"signature does not verify with {deferred.key_id!r}"
    return [
        Break(CHECK_SIGNATURE, deferred.location, deferred.aggregate_id, deferred.version, detail)
    ]


def verify_envelope(
    envelope: Envelope,
    keys: KeyRing,
    location: Location,
    *,
    check_signature: bool = True,
    data: bytes | None = None,
) -> list[Break]:
    """Checks that need only the envelope itself: id, hash, signer and signature.

    `check_signature=False` leaves out only the Ed25519 verification of a key the ring holds
    (an unknown key is still a break); the caller checks it later or proves the envelope
    otherwise (`ChainVerifier(defer_signatures=True)`). `data`: the bytes `envelope` was
    decoded from, when the caller has them (the hash is then checked without re-encoding,
    `codec.hash_matches`)."""
    breaks: list[Break] = []
    expected_id = event_id_for(envelope.aggregate_id, envelope.aggregate_version)
    if envelope.event_id != expected_id:
        breaks.append(_break(CHECK_EVENT_ID, envelope, location, f"expected {expected_id}"))
    hashed = (
        hash_matches(data, envelope)
        if data is not None
        else envelope_hash(envelope) == envelope.hash
    )
    if not hashed:
        breaks.append(_break(CHECK_HASH, envelope, location, "content does not match its hash"))
    if envelope.signing_key_id.split("/", 1)[0] != envelope.site_id:
        detail = f"signed by {envelope.signing_key_id!r}, authored by site {envelope.site_id!r}"
        breaks.append(_break(CHECK_SIGNER_SITE, envelope, location, detail))
    if envelope.signing_key_id not in keys:
        detail = f"unknown signing key {envelope.signing_key_id!r}"
        breaks.append(_break(CHECK_SIGNATURE, envelope, location, detail))
    elif check_signature and not keys.verify(
        envelope.signing_key_id, envelope.hash, envelope.signature
    ):
        detail = f"signature does not verify with {envelope.signing_key_id!r}"
        breaks.append(_break(CHECK_SIGNATURE, envelope, location, detail))
    return breaks


def stream_author_break(
    envelope: Envelope, pinned_site: str | None, location: Location
) -> list[Break]:
    """One author site per aggregate stream: `pinned_site` is the site of the stream's first
    envelope taken (None when this envelope is the first)."""
    if pinned_site is None or pinned_site == envelope.site_id:
        return []
    detail = f"stream authored by site {pinned_site!r}, this envelope by {envelope.site_id!r}"
    return [_break(CHECK_STREAM_AUTHOR, envelope, location, detail)]


class ChainVerifier:
    """Feeds envelopes in log order; checks chains, duplicates and version continuity.

    Duplicates (same aggregate, version and hash) are expected with at-least-once delivery
    and are not breaks. The same version with a different hash is a fork. Given an
    authorship policy it also checks, as every consumer does, that the author site may author
    the topic's events and that each stream keeps the author site of its first envelope.

    `defer_signatures=True`: every other check runs as fed, but the Ed25519 verification of
    each envelope signed by a ring key is appended to `deferred` instead (in feed order), for
    the caller to check or to prove covered by a signed checkpoint.
    """

    def __init__(
        self,
        keys: KeyRing,
        authorship: AuthorshipPolicy | None = None,
        *,
        defer_signatures: bool = False,
    ) -> None:
        self._keys = keys
        self._authorship = authorship
        self._defer = defer_signatures
        self.deferred: list[DeferredSignature] = []
        self._authors: dict[str, str] = {}
        self._hashes: dict[str, list[bytes]] = {}
        self.envelopes_seen = 0
        self.duplicates_seen = 0

    def feed_bytes(self, data: bytes, location: Location) -> list[Break]:
        try:
            envelope = decode(data)
        except DecodeError as error:
            return [Break(CHECK_DECODE, location, "", 0, f"not an envelope: {error}")]
        return self.feed(envelope, location, data)

    def feed(
        self, envelope: Envelope, location: Location, data: bytes | None = None
    ) -> list[Break]:
        """`data`: the bytes `envelope` was decoded from, when the caller has them."""
        self.envelopes_seen += 1
        breaks = verify_envelope(
            envelope, self._keys, location, check_signature=not self._defer, data=data
        )
        if self._defer and envelope.signing_key_id in self._keys:
            self.deferred.append(
                DeferredSignature(
                    envelope.signing_key_id,
                    envelope.hash,
                    envelope.signature,
                    location,
                    envelope.aggregate_id,
                    envelope.aggregate_version,
                    envelope.site_id,
                )
            )
        if self._authorship is not None:
            breaks += self._authorship.check(envelope, location, self._keys)
            pinned = self._authors.setdefault(envelope.aggregate_id, envelope.site_id)
            breaks += stream_author_break(envelope, pinned, location)
        chain = self._hashes.setdefault(envelope.aggregate_id, [])
        version = envelope.aggregate_version
        if 1 <= version <= len(chain):
            return breaks + self._check_repeat(envelope, chain[version - 1], location)
        if version != len(chain) + 1:
            detail = f"expected version {len(chain) + 1}, got {version}"
            breaks.append(_break(CHECK_VERSION_GAP, envelope, location, detail))
        expected_prev = chain[version - 2] if 2 <= version <= len(chain) + 1 else None
        if version == 1:
            expected_prev = GENESIS_PREV_HASH
        if expected_prev is not None and envelope.prev_hash != expected_prev:
            detail = "prev_hash does not match the hash of the previous version"
            breaks.append(_break(CHECK_PREV_HASH, envelope, location, detail))
        chain.extend([b""] * (version - len(chain) - 1))
        chain.append(envelope.hash)
        return breaks

    def _check_repeat(self, envelope: Envelope, known: bytes, location: Location) -> list[Break]:
        if known == b"":
            detail = "version arrived after a later version"
            return [_break(CHECK_VERSION_GAP, envelope, location, detail)]
        if envelope.hash != known:
            detail = "a different envelope was already seen for this version"
            return [_break(CHECK_FORK, envelope, location, detail)]
        self.duplicates_seen += 1
        return []

    @property
    def aggregates(self) -> int:
        return len(self._hashes)
