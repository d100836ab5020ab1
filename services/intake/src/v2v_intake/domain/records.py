"""What a therapy remembers about its collections and units (state, not events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from v2v_intake.domain.values import UnitKind, UnitStatus
from v2v_platform.conditions import Condition


@dataclass(frozen=True)
class CollectionRecord:
    collection_id: str
    collection_site_id: str
    started_at: datetime
    ended_at: datetime
    volume_ml: float
    total_nucleated_cells_e9: float
    cd3_cells_e9: float
    slot_id: str


@dataclass
class UnitRecord:
    din: str
    collection_id: str
    unit_kind: UnitKind
    status: UnitStatus = UnitStatus.LABELLED
    first_scan_user_id: str = ""
    first_scan_signature: dict[str, str] | None = None
    """The first scanner's manifestation (None on scans recorded before it was)."""
    condition: Condition | None = None
    manufacturing_site_id: str = ""
    window_starts_at: datetime | None = None
    labelled_at: datetime | None = None
    """When it was labelled (None on labels recorded before it was kept)."""
    first_scanned_at: datetime | None = None
    """When its label was first scanned (None before, and on scans recorded before it was
    kept)."""
    verified_at: datetime | None = None
    """When its label was verified, by the second scan (None before, and on verifications
    recorded before it was kept)."""
