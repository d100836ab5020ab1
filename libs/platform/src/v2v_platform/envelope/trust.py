"""The gate every consumer puts each record through before it changes anything.

`EnvelopeGate.check(raw, location)` returns the decoded `Envelope` when the record is a
trustworthy fact, else an `Untrusted` naming why (reason codes, the `CHECK_*` names of
`v2v_platform.envelope.verify`), with what could be read of it and its raw bytes:

- decode: not an envelope;
- event_id, hash, signature, signer_site: `verify_envelope`, the checks `v2v audit verify` runs
  (Ed25519 against the consortium key ring, signer site = envelope site);
- event_type, authorship: the authorship policy (contracts/authorship.yaml);
- stream_author: `check_stream_author`, one author site per aggregate stream, against the site
  pinned by the stream's first envelope the consumer took (kept by the consumer's ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.envelope.authorship import AUTHORSHIP, AuthorshipPolicy
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing, KeyRingFile
from v2v_platform.envelope.verify import (
    CHECK_DECODE,
    Break,
    Location,
    stream_author_break,
    verify_envelope,
)
from v2v_platform.ids import Coi, InvalidIdentifier

DETAIL_LIMIT = 2000
CLAIM_LIMIT = 64


@dataclass(frozen=True)
class Untrusted:
    """A record that must not be applied: where it was, why, and what it claims."""

    location: Location
    reasons: tuple[str, ...]
    detail: str
    raw: bytes
    coi: str = ""
    claimed_site: str = ""

    @property
    def reason(self) -> str:
        return ",".join(self.reasons)

    def __str__(self) -> str:
        claims = f"COI {self.coi or '?'}, claimed author {self.claimed_site or '?'}"
        return f"{self.reason} at {self.location} ({claims}): {self.detail}"


def untrusted(
    breaks: Sequence[Break],
    raw: bytes,
    location: Location,
    envelope: Envelope | None = None,
    key: bytes | None = None,
) -> Untrusted:
    reasons = tuple(dict.fromkeys(found.check for found in breaks))
    detail = "; ".join(found.detail for found in breaks)[:DETAIL_LIMIT]
    coi = _readable_coi(envelope.coi if envelope is not None else "") or _readable_coi(key)
    site = envelope.site_id[:CLAIM_LIMIT] if envelope is not None else ""
    return Untrusted(location, reasons, detail, raw, coi, site)


class EnvelopeGate:
    """Decodes and verifies records against the key ring (a `KeyRingFile` is read again when
    it changes) and the authorship policy."""

    def __init__(self, keys: KeyRing | KeyRingFile, authorship: AuthorshipPolicy = AUTHORSHIP):
        self._keys = keys
        self.authorship = authorship

    @property
    def keys(self) -> KeyRing:
        return self._keys if isinstance(self._keys, KeyRing) else self._keys.current()

    def check(
        self, raw: bytes | None, location: Location, key: bytes | None = None
    ) -> Envelope | Untrusted:
        """The envelope if `raw` is one that verifies and its site may author it on this topic.
        `key` (the record's Kafka key, the COI) names the COI of a record that does not decode."""
        data = raw or b""
        if not data:
            return untrusted(
                [Break(CHECK_DECODE, location, "", 0, "empty record")], data, location, key=key
            )
        try:
            envelope = decode(data)
        except DecodeError as error:
            found = Break(CHECK_DECODE, location, "", 0, f"not an envelope: {error}")
            return untrusted([found], data, location, key=key)
        breaks = self.breaks(envelope, location)
        return untrusted(breaks, data, location, envelope, key) if breaks else envelope

    def breaks(self, envelope: Envelope, location: Location) -> list[Break]:
        """Every per-envelope check: `verify_envelope` and the authorship policy."""
        keys = self.keys
        return verify_envelope(envelope, keys, location) + self.authorship.check(
            envelope, location, keys
        )

    @staticmethod
    def check_stream_author(
        envelope: Envelope, raw: bytes, location: Location, pinned_site: str | None
    ) -> Untrusted | None:
        """None when the stream has no author yet or `envelope` is by its author."""
        breaks = stream_author_break(envelope, pinned_site, location)
        return untrusted(breaks, raw, location, envelope) if breaks else None


def _readable_coi(text: str | bytes | None) -> str:
    if not text or len(text) > CLAIM_LIMIT:
        return ""
    try:
        return Coi.parse(text.decode() if isinstance(text, bytes) else text).value
    except (UnicodeDecodeError, InvalidIdentifier):
        return ""
