"""Receiving units at a manufacturing site (invariant I2) and their allocation to batches.

A scan is accepted only for a unit intake packaged for this site, whose DIN verified facts bind
to no other COI (`identity-conflict`, issue 14), whose COI matches the scanned COI label and
has a booked slot here. Anything else is refused with its reason and
recorded; nothing else changes. A refused scan is recorded on the chain it puts at risk: the
COI of the expected unit when the scanned DIN is known, else the scanned COI when it is a
valid COI (a published `ReceiptMismatch`). A scan with neither cannot be attributed to any
chain: it is kept as a local `UnattributableScan` of the unpublished records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate

from v2v_manufacturing.domain.values import ExpectedUnit
from v2v_platform.attribution import Attribution
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import (
    AttributedCreated,
    AttributedEvent,
    LocalCreated,
    attributed,
    local,
)
from v2v_platform.errors import Refused
from v2v_platform.ids.bindings import IDENTITY_CONFLICT, DinConflict

NAMESPACE = UUID("c41d9e27-8b6a-5f13-9e0d-2a7c5b8f1e34")

MALFORMED = "malformed"
UNKNOWN_UNIT = "unknown-unit"
COI_MISMATCH = "coi-mismatch"
WRONG_SITE = "wrong-site"
NO_SLOT = "no-slot"


@dataclass(frozen=True)
class Mismatch:
    """Why a receipt scan was refused: a machine-readable code and a sentence for people."""

    reason_code: str
    explanation: str


def malformed(*problems: str) -> Mismatch:
    """A label that is not a valid DIN or COI (each problem says which and why)."""
    return Mismatch(MALFORMED, "; ".join(p for p in problems if p))


def match_receipt(
    expected: ExpectedUnit | None,
    scanned_coi: str,
    site_id: str,
    booked_slot_id: str | None,
) -> Mismatch | None:
    """None when the scan matches a unit expected here for a COI with a booked slot."""
    if expected is None:
        return Mismatch(UNKNOWN_UNIT, "no unit with this DIN was packaged for manufacturing")
    if expected.other_cois:
        conflict = DinConflict(expected.din, (expected.coi, *expected.other_cois))
        return Mismatch(IDENTITY_CONFLICT, conflict.explanation)
    if scanned_coi != expected.coi:
        return Mismatch(
            COI_MISMATCH, f"the scanned COI {scanned_coi!r} is not the unit's COI {expected.coi}"
        )
    if expected.manufacturing_site_id != site_id:
        return Mismatch(
            WRONG_SITE,
            f"the unit was packaged for {expected.manufacturing_site_id}, not {site_id}",
        )
    if booked_slot_id is None:
        return Mismatch(NO_SLOT, f"COI {expected.coi} has no booked slot at {site_id}")
    return None


def chain_at_risk(expected: ExpectedUnit | None, valid_scanned_coi: str | None) -> str | None:
    """The COI a refused scan is recorded under: the expected unit's (its DIN is known),
    else the scanned COI (when it is valid), else None (the scan is unattributable)."""
    if expected is not None:
        return expected.coi
    return valid_scanned_coi or None


class ReceivedUnit(Aggregate):
    """A unit received at a manufacturing site; one aggregate per DIN (never received twice)."""

    class Received(AttributedCreated):
        din: str
        manufacturing_site_id: str
        slot_id: str
        condition: str
        window_starts_at: datetime
        received_at: datetime

        @property
        def occurred_at(self) -> datetime:
            """When the unit was received (clinical time): the envelope's `occurred_at`."""
            return self.received_at

    class AllocatedToBatch(AttributedEvent):
        din: str
        batch_id: str
        # when the batch it feeds started (clinical time); None on allocations recorded before
        # it was kept (not published: the envelope's `occurred_at` carries it)
        allocated_at: datetime | None = None

        @property
        def occurred_at(self) -> datetime:
            return self.allocated_at or self.timestamp

        def apply(self, aggregate: Any) -> None:
            aggregate.batch_id = self.batch_id

    def __init__(
        self,
        coi: str,
        din: str,
        manufacturing_site_id: str,
        slot_id: str,
        condition: str,
        window_starts_at: datetime,
        received_at: datetime,
        **_: Any,
    ) -> None:
        self.coi = coi
        self.din = din
        self.manufacturing_site_id = manufacturing_site_id
        self.slot_id = slot_id
        self.condition = Condition(condition)
        self.window_starts_at = window_starts_at
        self.received_at = received_at
        self.batch_id: str | None = None

    @staticmethod
    def create_id(din_data: str) -> UUID:
        return uuid5(NAMESPACE, f"unit:{din_data}")

    @classmethod
    def receive(
        cls, expected: ExpectedUnit, slot_id: str, received_at: datetime, by: Attribution
    ) -> ReceivedUnit:
        return cls._create(
            cls.Received,
            id=cls.create_id(expected.din_data),
            din=expected.din,
            manufacturing_site_id=by.site_id,
            slot_id=slot_id,
            condition=expected.condition.value,
            window_starts_at=expected.window_starts_at,
            received_at=received_at,
            **attributed(by, expected.coi),
        )

    def allocate(self, batch_id: str, allocated_at: datetime, by: Attribution) -> None:
        """Taken as input of `batch_id`, which started at `allocated_at` (clinical time)."""
        if self.batch_id is not None:
            raise Refused(f"unit {self.din} is already an input of batch {self.batch_id}")
        if self.manufacturing_site_id != by.site_id:
            raise Refused(f"unit {self.din} was received at {self.manufacturing_site_id}")
        fields = attributed(by, self.coi)
        self.trigger_event(
            self.AllocatedToBatch,
            din=self.din,
            batch_id=batch_id,
            allocated_at=allocated_at,
            **fields,
        )


class ReceiptMismatch(Aggregate):
    """One refused receipt scan, recorded with its reason (invariant I2)."""

    class Recorded(AttributedCreated):
        scanned_din: str
        scanned_coi: str
        reason_code: str
        explanation: str
        manufacturing_site_id: str

    def __init__(self, scanned_din: str, reason_code: str, **_: Any) -> None:
        self.scanned_din = scanned_din
        self.reason_code = reason_code

    @classmethod
    def record(
        cls, scanned_din: str, scanned_coi: str, mismatch: Mismatch, coi: str, by: Attribution
    ) -> ReceiptMismatch:
        """Recorded (and published) on the chain at risk, `coi` (see `chain_at_risk`)."""
        recorded: ReceiptMismatch = cls._create(
            cls.Recorded,
            id=uuid4(),
            scanned_din=scanned_din,
            scanned_coi=scanned_coi,
            reason_code=mismatch.reason_code,
            explanation=mismatch.explanation,
            manufacturing_site_id=by.site_id,
            **attributed(by, coi),
        )
        return recorded


class UnattributableScan(Aggregate):
    """A refused receipt scan that names no known unit and no valid COI (INTERNAL).

    It belongs to no chain of identity, so it cannot be published (every published event is
    keyed by its COI). It is kept, immutable, in the unpublished records, with its reason.
    """

    class Recorded(LocalCreated):
        scanned_din: str
        scanned_coi: str
        reason_code: str
        explanation: str
        manufacturing_site_id: str

    def __init__(
        self, scanned_din: str, scanned_coi: str, reason_code: str, explanation: str, **_: Any
    ) -> None:
        self.scanned_din = scanned_din
        self.scanned_coi = scanned_coi
        self.reason_code = reason_code
        self.explanation = explanation

    @classmethod
    def record(
        cls, scanned_din: str, scanned_coi: str, mismatch: Mismatch, by: Attribution
    ) -> UnattributableScan:
        recorded: UnattributableScan = cls._create(
            cls.Recorded,
            id=uuid4(),
            scanned_din=scanned_din,
            scanned_coi=scanned_coi,
            reason_code=mismatch.reason_code,
            explanation=mismatch.explanation,
            manufacturing_site_id=by.site_id,
            **local(by),
        )
        return recorded
