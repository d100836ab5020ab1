"""Refused scans that cannot be recorded on a unit at this site (I2).

A refused bedside scan of a unit received here is recorded on its `ProductAtSite`. One that
names a unit not received here, or no known unit, is a `BedsideMismatch` of its own, published
on the chain at risk when this site treats that patient (`chain_at_risk`: the unit's COI, else
the wristband's; the scanned labels are fields). A scan that names no chain this site treats
(another site's patient, a malformed or unknown label; and every refused receipt: a receipt
scan names only a DIN) is an `UnattributableScan` of the unpublished records, never published:
a refusal recorded here must not relate this site to another site's patient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    """One refused bedside scan on the chain at risk, for a unit not at this site: `coi` is a
    patient this site treats (`chain_at_risk`; before issue 13 it could be the scanned
    wristband's COI of any patient), `wristband_coi` the label as scanned."""

    class Recorded(AttributedCreated):
        scanned_din: str
        wristband_coi: str
        reason_code: str
        explanation: str
        scanned_at: datetime

        @property
        def occurred_at(self) -> datetime:
            return self.scanned_at

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


def chain_at_risk(cois: Iterable[str | None], treated_here: Callable[[str], bool]) -> str | None:
    """The chain a refused scan of a unit not received here is published on: the first of
    `cois` (the unit's, then the wristband's) whose patient this site treats; None (keep it
    unpublished) when it treats none of them. A scanned COI of another site's patient never
    names the chain: a refusal must not relate this site to that patient."""
    for coi in cois:
        if coi is not None and treated_here(coi):
            return coi
    return None
