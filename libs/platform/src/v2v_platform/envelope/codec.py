"""Canonical encoding, hashing, sealing (hash chain + Ed25519) of v2v event envelopes."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.events.v1.envelope_pb2 import Actor as ActorProto
from v2v.events.v1.envelope_pb2 import Envelope, SignatureMeaning
from v2v_platform.envelope.keys import SiteSigningKey

# uuid5 namespace for event ids: uuid5(V2V_EVENT_NAMESPACE, "<aggregate_id>:<version>").
V2V_EVENT_NAMESPACE = uuid.UUID("6d1f2c7e-8a43-5b0e-9c51-2f4a7d3e9b10")
GENESIS_PREV_HASH = b""

MEANINGS: dict[str, SignatureMeaning.ValueType] = {
    "": SignatureMeaning.SIGNATURE_MEANING_UNSPECIFIED,
    "authorship": SignatureMeaning.SIGNATURE_MEANING_AUTHORSHIP,
    "review": SignatureMeaning.SIGNATURE_MEANING_REVIEW,
    "approval": SignatureMeaning.SIGNATURE_MEANING_APPROVAL,
    "responsibility": SignatureMeaning.SIGNATURE_MEANING_RESPONSIBILITY,
    "verification": SignatureMeaning.SIGNATURE_MEANING_VERIFICATION,
    "witness": SignatureMeaning.SIGNATURE_MEANING_WITNESS,
}


@dataclass(frozen=True)
class Actor:
    """Who did it: user id, printed name and role (invariant I7)."""

    user_id: str
    printed_name: str
    role: str

    def to_proto(self) -> ActorProto:
        return ActorProto(user_id=self.user_id, printed_name=self.printed_name, role=self.role)


@dataclass(frozen=True)
class EnvelopeContent:
    """Everything an envelope says, before it is chained and signed."""

    coi: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    payload: Message
    schema_version: int
    recorded_at: datetime
    site_id: str
    actor: Actor
    reason: str = ""
    signature_meaning: str = ""
    occurred_at: datetime | None = None


_NAMESPACE_BYTES = V2V_EVENT_NAMESPACE.bytes


def event_id_for(aggregate_id: str, version: int) -> str:
    """Deterministic event id, so a republished event is recognisably the same event:
    str(uuid.uuid5(V2V_EVENT_NAMESPACE, f"{aggregate_id}:{version}")), computed as RFC 4122
    section 4.3 says without building UUID objects (a third of the time; every verified
    record computes one)."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{aggregate_id}:{version}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _timestamp(moment: datetime) -> Timestamp:
    if moment.tzinfo is None:
        raise ValueError("envelope timestamps must be timezone-aware (UTC)")
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _meaning(name: str) -> SignatureMeaning.ValueType:
    try:
        return MEANINGS[name]
    except KeyError:
        allowed = ", ".join(repr(m) for m in MEANINGS if m)
        raise ValueError(f"unknown signature meaning {name!r}; expected one of {allowed}") from None


def unsealed_envelope(content: EnvelopeContent) -> Envelope:
    """The envelope's fields from its content; `prev_hash`, `hash` and `signature` still empty."""
    if content.aggregate_version < 1:
        raise ValueError(f"aggregate version must be >= 1, got {content.aggregate_version}")
    return Envelope(
        event_id=event_id_for(content.aggregate_id, content.aggregate_version),
        coi=content.coi,
        aggregate_type=content.aggregate_type,
        aggregate_id=content.aggregate_id,
        aggregate_version=content.aggregate_version,
        event_type=content.payload.DESCRIPTOR.full_name,
        schema_version=content.schema_version,
        occurred_at=_timestamp(content.occurred_at or content.recorded_at),
        recorded_at=_timestamp(content.recorded_at),
        site_id=content.site_id,
        actor=content.actor.to_proto(),
        reason=content.reason,
        signature_meaning=_meaning(content.signature_meaning),
        payload=content.payload.SerializeToString(deterministic=True),
    )


def canonical_bytes(envelope: Envelope) -> bytes:
    """Deterministic serialization with `hash` and `signature` cleared (what is hashed)."""
    body = Envelope()
    body.CopyFrom(envelope)
    body.ClearField("hash")
    body.ClearField("signature")
    return body.SerializeToString(deterministic=True)


def envelope_hash(envelope: Envelope) -> bytes:
    return hashlib.sha256(canonical_bytes(envelope)).digest()


def _trailing_field(tag: bytes, value: bytes) -> bytes:
    """A non-empty length-delimited field as deterministic serialization writes it."""
    size = len(value)
    if size < 0x80:  # hashes and signatures: a one-byte length
        return tag + bytes((size,)) + value if size else b""
    length = bytearray()
    while size >= 0x80:
        length.append((size & 0x7F) | 0x80)
        size >>= 7
    length.append(size)
    return tag + bytes(length) + value


_HASH_TAG = b"\x8a\x01"  # field 17, length-delimited
_SIGNATURE_TAG = b"\x92\x01"  # field 18, length-delimited


def hash_matches(data: bytes, envelope: Envelope) -> bool:
    """`envelope_hash(envelope) == envelope.hash` for `envelope = decode(data)`, without
    re-encoding when `data` ends with the envelope's `hash` (17) and `signature` (18) fields,
    as every sealed envelope's canonical encoding does: then the bytes before them are hashed.
    Only when they hash to `envelope.hash` is that the answer (those bytes are then the ones
    the signer hashed); otherwise the envelope is re-encoded and hashed as always."""
    tail = _trailing_field(_HASH_TAG, envelope.hash) + _trailing_field(
        _SIGNATURE_TAG, envelope.signature
    )
    if data.endswith(tail):
        body = data[: len(data) - len(tail)]
        if hashlib.sha256(body).digest() == envelope.hash:
            return True
    return envelope_hash(envelope) == envelope.hash


def seal(envelope: Envelope, prev_hash: bytes, signer: SiteSigningKey) -> Envelope:
    """Chain the envelope to its predecessor and sign it with the authoring site's key."""
    if signer.site_id != envelope.site_id:
        raise ValueError(
            f"site {signer.site_id!r} cannot sign an envelope authored by {envelope.site_id!r}"
        )
    sealed = Envelope()
    sealed.CopyFrom(envelope)
    sealed.prev_hash = prev_hash
    sealed.signing_key_id = signer.key_id
    sealed.hash = envelope_hash(sealed)
    sealed.signature = signer.sign(sealed.hash)
    return sealed


def build_envelope(content: EnvelopeContent, prev_hash: bytes, signer: SiteSigningKey) -> Envelope:
    return seal(unsealed_envelope(content), prev_hash, signer)


def encode(envelope: Envelope) -> bytes:
    return envelope.SerializeToString(deterministic=True)


def decode(data: bytes) -> Envelope:
    envelope = Envelope()
    envelope.ParseFromString(data)
    return envelope
