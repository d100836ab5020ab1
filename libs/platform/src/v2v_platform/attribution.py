"""Who did it, where and why (invariant I7): carried by every command and every event."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from v2v_platform.errors import InvalidInput


@dataclass(frozen=True)
class Attribution:
    """The acting user (as asserted by their site's system), the site and the reason."""

    user_id: str
    printed_name: str
    role: str
    site_id: str
    reason: str = ""
    traceparent: str | None = None

    def __post_init__(self) -> None:
        for name in ("user_id", "printed_name", "role", "site_id"):
            if not str(getattr(self, name)).strip():
                raise InvalidInput(f"{name} of the acting user is required")

    def because(self, reason: str) -> Attribution:
        return replace(self, reason=reason)

    def event_fields(self) -> dict[str, Any]:
        """The attributes every published domain event carries (see envelope.from_domain)."""
        return {
            "actor": {
                "user_id": self.user_id,
                "printed_name": self.printed_name,
                "role": self.role,
            },
            "site_id": self.site_id,
            "reason": self.reason,
            "traceparent": self.traceparent,
        }


@dataclass(frozen=True)
class SignatureManifestation:
    """An electronic signature as 21 CFR 11.50 wants it shown: name, UTC time and meaning."""

    user_id: str
    printed_name: str
    meaning: str
    signed_at: datetime
    record_hash: str = ""

    MEANINGS = ("authorship", "review", "approval", "responsibility", "verification", "witness")
    """`verification` and `witness`: the second person of a two-person check, proven by
    re-authentication (label verification, bedside scans, infusion witness)."""

    def __post_init__(self) -> None:
        if self.meaning not in self.MEANINGS:
            raise InvalidInput(f"signature meaning must be one of {', '.join(self.MEANINGS)}")
        if self.signed_at.tzinfo is None:
            raise InvalidInput("signature time must be in UTC")
        if not self.user_id.strip() or not self.printed_name.strip():
            raise InvalidInput("a signature needs the signer's user id and printed name")

    @classmethod
    def now(cls, user_id: str, printed_name: str, meaning: str) -> SignatureManifestation:
        return cls(user_id, printed_name, meaning, datetime.now(UTC))

    def as_dict(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "printed_name": self.printed_name,
            "meaning": self.meaning,
            "signed_at": self.signed_at.isoformat(),
            **({"record_hash": self.record_hash} if self.record_hash else {}),
        }


@dataclass(frozen=True)
class WindowOverride:
    """Why a step past its stability window may still go ahead (I5): a reason and the
    overriding user's e-signature with meaning 'approval'."""

    reason: str
    signature: SignatureManifestation

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise InvalidInput("a window override needs a reason")
        if self.signature.meaning != "approval":
            raise InvalidInput("a window override needs an e-signature with meaning 'approval'")
