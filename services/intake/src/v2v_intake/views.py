"""Plain values the application returns to its adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from v2v_intake.domain.records import CollectionRecord
from v2v_intake.domain.therapy import Therapy
from v2v_intake.domain.values import BookedSlot, PersonalDetails


@dataclass(frozen=True)
class CollectionInput:
    started_at: datetime
    ended_at: datetime
    volume_ml: float
    total_nucleated_cells_e9: float
    cd3_cells_e9: float
    slot_id: str = ""


@dataclass(frozen=True)
class PackagingInput:
    condition: str
    temperature_c: float
    manufacturing_site_id: str
    frozen_at: datetime | None = None
    packaged_at: datetime | None = None
    """When the unit was packaged (clinical time); None: now."""


@dataclass(frozen=True)
class UnitView:
    din: str
    collection_id: str
    unit_kind: str
    status: str
    condition: str
    manufacturing_site_id: str
    window_starts_at: datetime | None


@dataclass(frozen=True)
class TherapyView:
    coi: str
    patient_pseudonym: str
    enrolling_site_id: str
    treating_site_id: str
    personal_details: PersonalDetails | None
    personal_details_erased: bool
    slots: tuple[BookedSlot, ...]
    collections: tuple[CollectionRecord, ...]
    units: tuple[UnitView, ...]


def therapy_view(therapy: Therapy, personal_details: PersonalDetails | None) -> TherapyView:
    units = tuple(
        UnitView(
            u.din,
            u.collection_id,
            u.unit_kind.value,
            u.status.value,
            u.condition.value if u.condition else "",
            u.manufacturing_site_id,
            u.window_starts_at,
        )
        for u in therapy.units.values()
    )
    return TherapyView(
        therapy.coi,
        therapy.patient_pseudonym,
        therapy.enrolling_site_id,
        therapy.treating_site_id,
        personal_details,
        therapy.personal_details_erased,
        tuple(therapy.slots),
        tuple(therapy.collections.values()),
        units,
    )
