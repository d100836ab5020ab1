"""Receipt of the units intake packaged for this site, matched against intake's facts (I2).

A scan is received only when the DIN is a unit intake packaged for this site, the scanned COI
is that unit's, and a slot is booked for the COI here. Any other scan is refused and recorded
first: on the chain of the COI it puts at risk (`ReceiptMismatch`, published), or, when it
names neither a known unit nor a valid COI, in the unpublished records only (logged).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from eventsourcing.persistence import IntegrityError

from v2v_manufacturing.domain.receipt import (
    Mismatch,
    ReceiptMismatch,
    ReceivedUnit,
    chain_at_risk,
    malformed,
    match_receipt,
)
from v2v_manufacturing.domain.slot_booking import SlotBooking, slot_booking_id
from v2v_manufacturing.views import ExpectedUnitView, ReceiptView
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Refused
from v2v_platform.scope import Scope
from v2v_platform.service_application import coi_or_problem, din_or_problem

if TYPE_CHECKING:
    from v2v_manufacturing.application import ManufacturingApplication

log = logging.getLogger("v2v.manufacturing")


class UnitReceipt:
    def __init__(self, app: ManufacturingApplication) -> None:
        self.app = app

    def receive(
        self,
        scanned_din: str,
        scanned_coi: str,
        by: Attribution,
        received_at: datetime | None = None,
    ) -> ReceiptView:
        """Labels are read as their bounded echoes: a refusal records and repeats no more.
        `received_at`: when the unit was received (clinical time; default now)."""
        by = self.app.check_local(by)
        at = self.app.when(received_at, "received_at")
        scanned_din, scanned_coi = limits.echo(scanned_din), limits.echo(scanned_coi)
        din, din_problem = din_or_problem(scanned_din)
        coi, coi_problem = coi_or_problem(scanned_coi)
        expected = self.app.facts.packaged_unit(din.data) if din is not None else None
        chain = chain_at_risk(expected, coi.value if coi is not None else None)
        if din is None or coi is None:
            mismatch = malformed(din_problem, coi_problem)
            self._refuse(scanned_din, scanned_coi, mismatch, chain, by)
        if self.app.find(ReceivedUnit, ReceivedUnit.create_id(din.data)) is not None:
            raise Refused(f"unit {din} was already received")
        slot_id = self.booked_slot(expected.coi, by.site_id) if expected else None
        found = match_receipt(expected, coi.value, by.site_id, slot_id)
        if found is not None or expected is None or slot_id is None:
            assert found is not None  # match_receipt returns one whenever a fact is missing
            self._refuse(scanned_din, scanned_coi, found, chain, by)
        unit = ReceivedUnit.receive(expected, slot_id, at, by)
        try:
            self.app.save(unit)
        except IntegrityError:
            raise Refused(f"unit {din} was already received") from None
        return ReceiptView(expected.coi, expected.din, slot_id, expected.condition)

    def expected_units(self, coi: str, scope: Scope) -> list[ExpectedUnitView]:
        """Units intake packaged for this site for `coi`, as known from intake's events: to the
        site they are bound for (this one) and auditors; NotFound, as if absent, to any other
        site."""
        limits.check_id(coi, "coi")
        site_id = self.app.site_id
        scope.require_sees([site_id], f"COI {coi}")
        slot_id = self.booked_slot(coi, site_id)
        return [
            ExpectedUnitView(u.din, u.coi, u.condition, u.window_starts_at, slot_id or "")
            for u in self.app.facts.units_for(coi)
            if u.manufacturing_site_id == site_id
        ]

    def booked_slot(self, coi: str, site_id: str) -> str | None:
        """A slot intake booked for `coi` at `site_id` that is booked on the COI's chain."""
        for slot_id in self.app.facts.booked_slot_ids(coi, site_id):
            booking = self.app.find(SlotBooking, slot_booking_id(slot_id))
            if (
                booking is not None
                and booking.is_booked
                and booking.coi == coi
                and booking.manufacturing_site_id == site_id
            ):
                return slot_id
        return None

    def _refuse(
        self,
        scanned_din: str,
        scanned_coi: str,
        mismatch: Mismatch,
        chain: str | None,
        by: Attribution,
    ) -> NoReturn:
        refusal = f"receipt refused ({mismatch.reason_code}): {mismatch.explanation}"
        if chain is None:
            scan_id = self.app.unpublished.record_unattributable_scan(
                scanned_din, scanned_coi, mismatch, by
            )
            log.warning(
                "unattributable receipt scan %s at %s by %s (DIN %r, COI %r): %s",
                scan_id,
                by.site_id,
                by.user_id,
                scanned_din,
                scanned_coi,
                refusal,
            )
            raise Refused(
                f"{refusal}; the scan names neither a known unit nor a valid COI, so it is"
                f" recorded at this site only (scan {scan_id})"
            )
        self.app.save(ReceiptMismatch.record(scanned_din, scanned_coi, mismatch, chain, by))
        raise Refused(refusal)
