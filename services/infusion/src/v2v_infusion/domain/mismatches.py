"""Refused scans that cannot be recorded on a unit at this site (I2).

A refused bedside scan of a unit received here is recorded on its `ProductAtSite`. One that
names a unit not received here (its COI is known) or no known unit but a valid wristband COI
is a `BedsideMismatch` of its own, published on the chain at risk. A scan that names neither
a known unit nor a valid COI (and every refused receipt: a receipt scan names only a DIN)
belongs to no chain: it is an `UnattributableScan` of the unpublished records, never published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from eventsourcing.domain import Aggregate

from v2v_infusion.domain.values import Mismatch
from v2v_platform.attribution import Attribution
from v2v_platform.domain_events import AttributedCreated, LocalCreated, attributed, local

RECEIPT = "receipt"
BEDSIDE = "bedside"


class BedsideMismatch(Aggregate):
    """One refused bedside scan on the chain at risk, for a unit not at this site."""

    class Recorded(AttributedCreated):
        scanned_din: str
        wristband_coi: str
        reason_code: str
        explanation: str
        scanned_at: datetime

    def __init__(self, scanned_din: str, reason_code: str, **_: Any) -> None:
        self.scanned_din = scanned_din
        self.reason_code = reason_code

    @classmethod
    def record(
        cls,
        scanned_din: str,
        wristband_coi: str,
        mismatch: Mismatch,
        scanned_at: datetime,
        coi: str,
        by: Attribution,
    ) -> BedsideMismatch:
        recorded: BedsideMismatch = cls._create(
            cls.Recorded,
            id=uuid4(),
            scanned_din=scanned_din,
            wristband_coi=wristband_coi,
            reason_code=mismatch.reason_code,
            explanation=mismatch.explanation,
            scanned_at=scanned_at,
            **attributed(by, coi),
        )
        return recorded


class UnattributableScan(Aggregate):
    """A refused scan that belongs to no chain of identity (INTERNAL, never published)."""

    class Recorded(LocalCreated):
        scan_kind: str
        scanned_din: str
        wristband_coi: str
        reason_code: str
        explanation: str
        scanned_at: datetime

    def __init__(self, scan_kind: str, scanned_din: str, reason_code: str, **_: Any) -> None:
        self.scan_kind = scan_kind
        self.scanned_din = scanned_din
        self.reason_code = reason_code

    @classmethod
    def record(
        cls,
        scan_kind: str,
        scanned_din: str,
        wristband_coi: str,
        mismatch: Mismatch,
        scanned_at: datetime,
        by: Attribution,
    ) -> UnattributableScan:
        recorded: UnattributableScan = cls._create(
            cls.Recorded,
            id=uuid4(),
            scan_kind=scan_kind,
            scanned_din=scanned_din,
            wristband_coi=wristband_coi,
            reason_code=mismatch.reason_code,
            explanation=mismatch.explanation,
            scanned_at=scanned_at,
            **local(by),
        )
        return recorded
