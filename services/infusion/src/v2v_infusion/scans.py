"""Scanning product units at the treating site: receipt, storage, thaw and the two-person
bedside verification (I2, I4, I5).

A refused scan is recorded BEFORE `ScanRefused` is raised: on the unit when it was received
here, else on the chain at risk (a `BedsideMismatch` under the unit's COI, else the
wristband's), else, naming no chain at all, in the internal registers. Nothing else changes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NoReturn

from eventsourcing.persistence import IntegrityError

from v2v_infusion.core import InfusionCore
from v2v_infusion.domain.bedside import check_scan, infuse_by
from v2v_infusion.domain.mismatches import BEDSIDE, RECEIPT, BedsideMismatch
from v2v_infusion.domain.product import ProductAtSite, UnitStatus
from v2v_infusion.domain.values import (
    MALFORMED_LABEL,
    NOT_RECEIVED,
    UNKNOWN_UNIT,
    Mismatch,
    ScanRefused,
)
from v2v_infusion.views import ProductUnitView, ScanView
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Refused
from v2v_platform.ids import Coi, Din, InvalidIdentifier

log = logging.getLogger("v2v.infusion")


class ProductCommands(InfusionCore):
    """Receipt, storage and thaw of product units at this site."""

    def receive_product(
        self, din_text: str, received_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        self._check_local(by)
        moment = self._when(received_at, "received_at")
        try:
            din = Din.parse(din_text.strip())
        except InvalidIdentifier as error:
            mismatch = Mismatch(MALFORMED_LABEL, f"the label {din_text!r} is not a DIN: {error}")
            self._refuse_receipt(din_text, mismatch, moment, by)
        product = self.facts.product_unit(din.data)
        if product is None:
            mismatch = Mismatch(
                UNKNOWN_UNIT, f"no product unit {din} is known from manufacturing: STOP"
            )
            self._refuse_receipt(din_text, mismatch, moment, by)
        if self._unit_here(din) is not None:
            raise Refused(f"unit {din} was already received at {self.site_id}")
        unit = ProductAtSite.receive(product, self.site_id, moment, by)
        try:
            self.save(unit)
        except IntegrityError:
            raise Refused(f"unit {din} was already received at {self.site_id}") from None
        return self._view(unit)

    def _refuse_receipt(
        self, scanned_din: str, mismatch: Mismatch, moment: datetime, by: Attribution
    ) -> NoReturn:
        scan_id = self.registers.record_unattributable_scan(
            RECEIPT, scanned_din, "", mismatch, moment, by
        )
        log.warning(
            "receipt scan %s refused at %s (%s): %s",
            scan_id,
            self.site_id,
            mismatch.reason_code,
            mismatch.explanation,
        )
        raise ScanRefused(mismatch, "receipt")

    def store_product(
        self, din_text: str, location: str, stored_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        self._check_local(by)
        moment = self._when(stored_at, "stored_at")

        def attempt() -> ProductUnitView:
            unit = self._received(din_text)
            unit.store(location, moment, by)
            self.save(unit)
            return self._view(unit)

        return self._retrying(attempt)

    def start_thaw(
        self, din_text: str, thaw_started_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        self._check_local(by)
        moment = self._when(thaw_started_at, "thaw_started_at")

        def attempt() -> ProductUnitView:
            unit = self._received(din_text)
            unit.start_thaw(moment, self.windows.post_thaw, by)
            self.save(unit)
            return self._view(unit)

        return self._retrying(attempt)


class BedsideCommands(ProductCommands):
    """The two-person bedside verification (I2, I4, I5)."""

    def scan_at_bedside(
        self, wristband_coi: str, din_text: str, scanned_at: datetime | None, by: Attribution
    ) -> ScanView:
        self._check_local(by)
        moment = self._when(scanned_at, "scanned_at")
        din, din_problem = _din_or_problem(din_text)
        coi, coi_problem = _coi_or_problem(wristband_coi)
        product = self.facts.product_unit(din.data) if din is not None else None
        if din is None or coi is None:
            problems = "; ".join(p for p in (din_problem, coi_problem) if p)
            chain = product.coi if product else (coi.value if coi else None)
            mismatch = Mismatch(MALFORMED_LABEL, problems)
            self._refuse_scan(din, din_text, wristband_coi, mismatch, moment, chain, by)
        if product is None:
            mismatch = Mismatch(UNKNOWN_UNIT, f"no product unit {din} is known: STOP")
            self._refuse_scan(din, din_text, wristband_coi, mismatch, moment, coi.value, by)

        def attempt() -> ScanView:
            unit = self._unit_here(din)
            if unit is None:
                mismatch = Mismatch(NOT_RECEIVED, f"unit {din} was not received at {self.site_id}")
                self._refuse_scan(din, din_text, wristband_coi, mismatch, moment, product.coi, by)
            return self._scan(unit, din_text, coi.value, moment, by)

        return self._retrying(attempt)

    def _scan(
        self, unit: ProductAtSite, din_text: str, wristband: str, moment: datetime, by: Attribution
    ) -> ScanView:
        release = self.facts.release_of(unit.batch_id)
        unacknowledged = self._unacknowledged(unit.batch_id)
        checked_at = max(moment, self.clock())
        fresh_window = self.windows.fresh_product
        mismatch = check_scan(
            unit, wristband, by.user_id, release, unacknowledged, checked_at, fresh_window
        )
        if mismatch is not None:
            unit.record_mismatch(din_text, wristband, mismatch, moment, by)
            self.save(unit)
            raise ScanRefused(mismatch, "bedside scan")
        if unit.status is UnitStatus.VERIFIED:  # a further good scan changes nothing
            return ScanView(UnitStatus.VERIFIED.value, self._view(unit))
        if unit.status is UnitStatus.FIRST_SCAN_RECORDED:
            deadline = infuse_by(unit, release, fresh_window)
            assert deadline is not None, "check_window refuses a unit without a window"
            unit.verify(moment, release.status.value, deadline, by)
        else:
            unit.record_first_scan(wristband, moment, by)
        self.save(unit)
        return ScanView(unit.status.value, self._view(unit))

    def _refuse_scan(
        self,
        din: Din | None,
        scanned_din: str,
        wristband_coi: str,
        mismatch: Mismatch,
        moment: datetime,
        chain: str | None,
        by: Attribution,
    ) -> NoReturn:
        """Record the refused scan on the unit here, else the chain at risk, else locally."""

        def attempt() -> None:
            unit = self._unit_here(din) if din is not None else None
            if unit is not None:
                unit.record_mismatch(scanned_din, wristband_coi, mismatch, moment, by)
                self.save(unit)
            elif chain is not None:
                record = BedsideMismatch.record
                self.save(record(scanned_din, wristband_coi, mismatch, moment, chain, by))
            else:
                scan_id = self.registers.record_unattributable_scan(
                    BEDSIDE, scanned_din, wristband_coi, mismatch, moment, by
                )
                log.warning("unattributable bedside scan %s at %s", scan_id, self.site_id)

        self._retrying(attempt)
        raise ScanRefused(mismatch, "bedside scan")


def _din_or_problem(text: str) -> tuple[Din | None, str]:
    try:
        return Din.parse(text.strip()), ""
    except InvalidIdentifier as error:
        return None, f"the unit label {text!r} is not a DIN: {error}"


def _coi_or_problem(text: str) -> tuple[Coi | None, str]:
    try:
        return Coi.parse(text.strip()), ""
    except InvalidIdentifier as error:
        return None, f"the wristband {text!r} is not a COI: {error}"
