"""What the manufacturing application needs from outside, each with its null object.

`ManufacturingFacts`: what manufacturing knows from intake's events (its own projection,
`adapters.facts_projection`); manufacturing never calls intake or reads its database.
"""

from __future__ import annotations

from typing import Protocol

from v2v_manufacturing.domain.values import Enrolment, ExpectedUnit
from v2v_platform.ids.bindings import DinConflict


class ManufacturingFacts(Protocol):
    """The units intake packaged (for which COI and manufacturing site), the slots intake
    booked for a COI, and who enrolled (and treats) each COI's patient, as manufacturing
    learned them from Kafka."""

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None: ...
    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]: ...
    def units_for(self, coi: str) -> list[ExpectedUnit]: ...
    def enrolment(self, coi: str) -> Enrolment | None: ...
    def identity_conflict(self, din_data: str) -> DinConflict | None:
        """Whether verified facts bind the DIN to more than one COI (issue 14)."""
        ...


class NoManufacturingFacts:
    """Knows nothing: every receipt and every booking is refused (for processes that only
    relay)."""

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None:
        return None

    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]:
        return []

    def units_for(self, coi: str) -> list[ExpectedUnit]:
        return []

    def enrolment(self, coi: str) -> Enrolment | None:
        return None

    def identity_conflict(self, din_data: str) -> DinConflict | None:
        return None
