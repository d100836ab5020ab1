"""Electronic signatures (21 CFR 11.50, 11.70, 11.200): each one is executed by re-entering
the signer's password, and its manifestation (printed name, UTC time, meaning) is bound to
the SHA-256 of the record it signs, so the signature cannot be moved to another record.

`record_hash` is computed over a canonical JSON form of the record's content (sorted keys,
no whitespace, datetimes as ISO 8601 UTC); anyone holding the record recomputes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from v2v_platform.attribution import SignatureManifestation
from v2v_platform.errors import Forbidden, InvalidInput, ReauthenticationFailed
from v2v_platform.esign.passwords import verify_password
from v2v_platform.esign.store import MAX_FAILURES, SignerStore


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput("a signed record's times must be in UTC")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def record_hash(record: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the record's canonical JSON."""
    text = json.dumps(_canonical(record), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SignatureRequest:
    """What a signer gives to sign: who, their password (re-authentication) and what their
    signature means. The password is never stored or logged."""

    user_id: str
    password: str
    meaning: str

    def __post_init__(self) -> None:
        if not self.user_id.strip():
            raise InvalidInput("an e-signature needs the signer's user id")
        if not self.password:
            raise InvalidInput("an e-signature needs the signer's password (re-authentication)")
        if self.meaning not in SignatureManifestation.MEANINGS:
            meanings = ", ".join(SignatureManifestation.MEANINGS)
            raise InvalidInput(f"signature meaning must be one of {meanings}")

    def __repr__(self) -> str:
        return f"SignatureRequest(user_id={self.user_id!r}, meaning={self.meaning!r})"


class ESigner:
    """Executes signatures for one service against its local signer store."""

    def __init__(
        self, store: SignerStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    def sign(
        self,
        site_id: str,
        request: SignatureRequest,
        signing_role: str,
        record: Mapping[str, Any],
    ) -> SignatureManifestation:
        """Re-authenticate the signer at `site_id`, check they may sign as `signing_role`, and
        return the manifestation bound to `record`'s hash."""
        signer = self._store.get(site_id, request.user_id)
        if signer is None:
            raise ReauthenticationFailed(
                f"no signer {request.user_id!r} is registered for site {site_id}"
            )
        if signer.locked:
            raise ReauthenticationFailed(
                f"signer {request.user_id!r} is locked after {MAX_FAILURES} failed"
                " re-authentications; an administrator must unlock them"
            )
        if not verify_password(request.password, signer.password_hash):
            self._store.set_failures(site_id, request.user_id, signer.failures + 1)
            raise ReauthenticationFailed(f"re-authentication of {request.user_id!r} failed")
        if signer.failures:
            self._store.set_failures(site_id, request.user_id, 0)
        if signing_role not in signer.roles:
            raise Forbidden(
                f"{signer.printed_name} ({request.user_id}) may not sign as {signing_role}"
            )
        return SignatureManifestation(
            user_id=signer.user_id,
            printed_name=signer.printed_name,
            meaning=request.meaning,
            signed_at=self._clock(),
            record_hash=record_hash(record),
        )
