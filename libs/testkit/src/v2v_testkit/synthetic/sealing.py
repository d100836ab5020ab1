"""Fast chaining and signing of generated envelopes, byte-identical to the platform codec.

`v2v_platform.envelope.seal` copies the message twice per envelope; a generated history of a
million events is sealed here instead: the envelope is serialized once with `hash` and
`signature` empty (that IS its canonical encoding), hashed, signed, and the two fields are
appended. Deterministic serialization writes fields in field-number order and `hash` (17) and
`signature` (18) are the last two, so the result equals `encode(seal(...))` (tested).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.events.v1.envelope_pb2 import Actor, Envelope
from v2v_platform.envelope.codec import MEANINGS, event_id_for
from v2v_platform.envelope.keys import SiteSigningKey

_HASH_FIELD = b"\x8a\x01\x20"  # field 17, length-delimited, 32 bytes
_SIGNATURE_FIELD = b"\x92\x01\x40"  # field 18, length-delimited, 64 bytes


@dataclass(frozen=True)
class Draft:
    """One event of a generated journey before it is put on its aggregate's chain."""

    context: str
    aggregate_type: str
    aggregate_id: str
    coi: str
    recorded_at: datetime
    payload: Message
    site_id: str
    actor: tuple[str, str, str]
    occurred_at: datetime | None = None
    reason: str = ""
    signature_meaning: str = ""


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class StreamSealer:
    """Chains each aggregate's drafts in the order given and signs them with the site's key."""

    def __init__(self, signers: dict[str, SiteSigningKey]) -> None:
        self._signers = signers
        self._key_ids = {site: signer.key_id for site, signer in signers.items()}
        self._heads: dict[str, tuple[int, bytes]] = {}

    def seal(self, draft: Draft) -> bytes:
        version, prev_hash = self._heads.get(draft.aggregate_id, (0, b""))
        version += 1
        user_id, printed_name, role = draft.actor
        envelope = Envelope(
            event_id=event_id_for(draft.aggregate_id, version),
            coi=draft.coi,
            aggregate_type=draft.aggregate_type,
            aggregate_id=draft.aggregate_id,
            aggregate_version=version,
            event_type=draft.payload.DESCRIPTOR.full_name,
            schema_version=1,
            occurred_at=_stamp(draft.occurred_at or draft.recorded_at),
            recorded_at=_stamp(draft.recorded_at),
            site_id=draft.site_id,
            actor=Actor(user_id=user_id, printed_name=printed_name, role=role),
            reason=draft.reason,
            signature_meaning=MEANINGS[draft.signature_meaning],
            payload=draft.payload.SerializeToString(deterministic=True),
            prev_hash=prev_hash,
            signing_key_id=self._key_ids[draft.site_id],
        )
        body = envelope.SerializeToString(deterministic=True)
        digest = hashlib.sha256(body).digest()
        signature = self._signers[draft.site_id].sign(digest)
        self._heads[draft.aggregate_id] = (version, digest)
        return body + _HASH_FIELD + digest + _SIGNATURE_FIELD + signature
