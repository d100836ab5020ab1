"""What the intake application needs from the outside world (implemented by adapters), each
with its null object for a process built without it (the outbox relay): it cannot command."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from v2v_intake.domain.values import BookedSlot
from v2v_platform.attribution import Attribution
from v2v_platform.errors import DomainError
from v2v_platform.service_application import NotWired


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


class NoManufacturingSlots:
    """Books nothing: this process was built without the manufacturing service's client."""

    def book(
        self, coi: str, manufacturing_site_id: str, slot_date: date, by: Attribution
    ) -> BookedSlot:
        raise NotWired("this intake process has no manufacturing client: it cannot book slots")


class NoKeys:
    """Holds no key: this process was built without the key store (it cannot seal, open or
    shred personal details, and says so rather than pretend a key is gone)."""

    def get_or_create(self, coi: str) -> bytes:
        raise _no_key_store()

    def get(self, coi: str) -> bytes | None:
        raise _no_key_store()

    def destroy(self, coi: str) -> None:
        raise _no_key_store()


def _no_key_store() -> NotWired:
    return NotWired("this intake process has no key store for personal details")
