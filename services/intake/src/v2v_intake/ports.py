"""What the intake application needs from the outside world (implemented by adapters)."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from v2v_intake.domain.values import BookedSlot
from v2v_platform.attribution import Attribution
from v2v_platform.errors import DomainError


class UpstreamUnavailable(DomainError):
    """A service this one depends on did not answer in time; the caller may retry later."""

    slug = "upstream-unavailable"
    title = "A dependency is unavailable"
    http_status = 503
    grpc_code = "UNAVAILABLE"


class ManufacturingSlots(Protocol):
    """Slot booking at a manufacturing site (the manufacturing service's gRPC API).

    Raises Refused when no slot is free, UpstreamUnavailable when the service cannot be
    reached in time.
    """

    def book(
        self, coi: str, manufacturing_site_id: str, slot_date: date, by: Attribution
    ) -> BookedSlot: ...


class KeyStore(Protocol):
    """Per-COI data keys, kept apart from the event store; destroying one shreds the data."""

    def get_or_create(self, coi: str) -> bytes:
        """The COI's key, created (32 random bytes) if it has none yet; atomic."""
        ...

    def get(self, coi: str) -> bytes | None: ...

    def destroy(self, coi: str) -> None:
        """Forget the key for good (no error if it is already gone)."""
        ...
