"""The signed, hash-chained event envelope (proto: v2v.events.v1.Envelope)."""

from v2v_platform.envelope.authorship import AUTHORSHIP, AuthorshipPolicy
from v2v_platform.envelope.codec import (
    Actor,
    EnvelopeContent,
    build_envelope,
    canonical_bytes,
    decode,
    encode,
    envelope_hash,
    event_id_for,
    seal,
)
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_platform.envelope.keys import KeyRing, KeyRingFile, SiteSigningKey
from v2v_platform.envelope.trust import EnvelopeGate, Untrusted
from v2v_platform.envelope.verify import Break, ChainVerifier, Location, verify_envelope

__all__ = [
    "AUTHORSHIP",
    "CONTEXTS",
    "Actor",
    "AuthorshipPolicy",
    "Break",
    "ChainVerifier",
    "EnvelopeContent",
    "EnvelopeGate",
    "KeyRing",
    "KeyRingFile",
    "Location",
    "SiteSigningKey",
    "Untrusted",
    "build_envelope",
    "canonical_bytes",
    "decode",
    "encode",
    "envelope_hash",
    "event_id_for",
    "seal",
    "topic_for",
    "verify_envelope",
]
