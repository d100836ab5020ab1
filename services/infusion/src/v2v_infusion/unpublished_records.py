"""Infusion state that belongs to no chain of identity (never relayed to Kafka).

Refused scans that name neither a known unit nor a valid COI (every refused receipt scan, and
bedside scans with an unknown or malformed DIN and a malformed wristband). They cannot be
published (every event on `v2v.infusion.events.v1` is keyed by its COI) but are kept,
immutable, with their reason. Own event store: in PostgreSQL the same database with its own
tables, in SQLite its own file, in memory (POPO) in unit tests.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from v2v_infusion.domain.mismatches import UnattributableScan
from v2v_infusion.domain.values import Mismatch
from v2v_platform.attribution import Attribution
from v2v_platform.service_application import UnpublishedRecords


class InfusionUnpublishedRecords(UnpublishedRecords):
    name = "InfusionRegisters"
    """The stored name (PostgreSQL table `infusionregisters_events`): kept, so that the
    records written before the rename are still read."""

    def record_unattributable_scan(
        self,
        scan_kind: str,
        scanned_din: str,
        wristband_coi: str,
        mismatch: Mismatch,
        scanned_at: datetime,
        by: Attribution,
    ) -> UUID:
        scan = UnattributableScan.record(
            scan_kind, scanned_din, wristband_coi, mismatch, scanned_at, by
        )
        self.save(scan)
        scan_id: UUID = scan.id
        return scan_id
