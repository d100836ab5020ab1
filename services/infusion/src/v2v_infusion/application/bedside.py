"""The two-person bedside verification (I2, I4, I5): the patient's wristband (COI) and the
product unit (DIN) are scanned by two different persons before the unit may be infused. Each
scanner is proven: they re-authenticate against this site's signer store (signer role "nurse",
meaning "verification": `domain.bedside.BEDSIDE_CHECK`) before anything is recorded, and the
person recorded (on a scan, a verification or a refusal) is the proven signer.

The rules (which check fails first, the windows) are in `domain.site_rules` (does the unit
belong here at all) and `domain.bedside`; here the scan is read, checked and recorded. A
refused scan is recorded BEFORE `ScanRefused` is raised: on the unit when it was received here,
else on a chain at risk that this site treats (`domain.mismatches.chain_at_risk`: a
`BedsideMismatch` under the unit's COI, else the wristband's, when intake's enrolment names
this site as its treating site), else in the unpublished records (never published: a refused
scan must not relate this site to another site's patient). Nothing else changes. The second
good scan records `BedsideVerified` with the deadline this site applied (`infuse_by`) and the
rules' tag. The scan is judged at its clinical time (`scanned_at`, else now): a scan entered
after the fact is judged by when it happened, the windows included; the scans follow the thaw
(cryo) or the receipt (fresh), the second the first (`domain.product`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from v2v_infusion.domain.bedside import BEDSIDE_CHECK, bedside_record, check_scan, infuse_by
from v2v_infusion.domain.mismatches import BEDSIDE, BedsideMismatch, chain_at_risk
from v2v_infusion.domain.product import ProductAtSite, UnitStatus
from v2v_infusion.domain.values import (
    MALFORMED_LABEL,
    NOT_RECEIVED,
    UNKNOWN_UNIT,
    Mismatch,
    ScanRefused,
)
from v2v_infusion.views import ScanView
from v2v_platform import limits
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.esign import SignatureRequest
from v2v_platform.esign.persons import as_proven, prove
from v2v_platform.ids import Din
from v2v_platform.service_application import coi_or_problem, din_or_problem

if TYPE_CHECKING:
    from v2v_infusion.application import InfusionApplication

log = logging.getLogger("v2v.infusion")


class BedsideVerification:
    def __init__(self, app: InfusionApplication) -> None:
        self.app = app

    def scan(
        self,
        wristband_coi: str,
        din_text: str,
        scanned_at: datetime | None,
        signature: SignatureRequest | None,
        by: Attribution,
    ) -> ScanView:
        app = self.app
        by = app.check_local(by)
        moment = app.when(scanned_at, "scanned_at")
        # the labels as a refusal records and repeats them: at most MAX_LABEL_CHARS each
        wristband_coi, din_text = limits.echo(wristband_coi), limits.echo(din_text)
        din, din_problem = din_or_problem(din_text)
        coi, coi_problem = coi_or_problem(wristband_coi)
        scanned = bedside_record(
            str(din) if din else din_text, coi.value if coi else wristband_coi, moment
        )
        proof = prove(app.signer, app.site_id, signature, BEDSIDE_CHECK, by.user_id, scanned)
        by = as_proven(by, proof)
        product = app.facts.product_unit(din.data) if din is not None else None
        unit_coi = product.coi if product else None
        chain = chain_at_risk([unit_coi, coi.value if coi else None], app.units.treats)
        if din is None or coi is None:
            problems = _malformed(din_text, din_problem, wristband_coi, coi_problem)
            mismatch = Mismatch(MALFORMED_LABEL, problems)
            self._refuse(din, din_text, wristband_coi, mismatch, moment, chain, by)
        if product is None:
            mismatch = Mismatch(UNKNOWN_UNIT, f"no product unit {din} is known: STOP")
            self._refuse(din, din_text, wristband_coi, mismatch, moment, chain, by)

        def attempt() -> ScanView:
            unit = app.units.find(din)
            if unit is None:
                mismatch = Mismatch(NOT_RECEIVED, f"unit {din} was not received at {app.site_id}")
                self._refuse(din, din_text, wristband_coi, mismatch, moment, chain, by)
            return self._check_and_record(unit, din_text, coi.value, moment, proof, by)

        return app.retrying(attempt)

    def _check_and_record(
        self,
        unit: ProductAtSite,
        din_text: str,
        wristband: str,
        moment: datetime,
        proof: SignatureManifestation,
        by: Attribution,
    ) -> ScanView:
        app = self.app
        release = app.facts.release_of(unit.batch_id)
        unacknowledged = app.units.unacknowledged(unit.batch_id)
        fresh_window = app.rules.fresh_product
        mismatch = app.units.misplaced(unit.din, unit.coi) or check_scan(
            unit, wristband, by.user_id, release, unacknowledged, moment, fresh_window
        )
        if mismatch is not None:
            unit.record_mismatch(din_text, wristband, mismatch, moment, by)
            app.save(unit)
            raise ScanRefused(mismatch, "bedside scan")
        if unit.status is UnitStatus.VERIFIED:  # a further good scan changes nothing
            return ScanView(UnitStatus.VERIFIED.value, app.units.view(unit))
        if unit.status is UnitStatus.FIRST_SCAN_RECORDED:
            deadline = infuse_by(unit, release, fresh_window)
            assert deadline is not None, "check_window refuses a unit without a window"
            unit.verify(moment, release.status.value, deadline, app.rules, proof, by)
        else:
            unit.record_first_scan(wristband, moment, proof, by)
        app.save(unit)
        return ScanView(unit.status.value, app.units.view(unit))

    def _refuse(
        self,
        din: Din | None,
        scanned_din: str,
        wristband_coi: str,
        mismatch: Mismatch,
        moment: datetime,
        chain: str | None,
        by: Attribution,
    ) -> NoReturn:
        """Record the refused scan on the unit here, else on `chain` (a chain at risk this site
        treats), else locally (unpublished)."""
        app = self.app

        def attempt() -> None:
            unit = app.units.find(din) if din is not None else None
            if unit is not None:
                unit.record_mismatch(scanned_din, wristband_coi, mismatch, moment, by)
                app.save(unit)
            elif chain is not None:
                record = BedsideMismatch.record
                app.save(record(scanned_din, wristband_coi, mismatch, moment, chain, by))
            else:
                scan_id = app.unpublished.record_unattributable_scan(
                    BEDSIDE, scanned_din, wristband_coi, mismatch, moment, by
                )
                log.warning("unattributable bedside scan %s at %s", scan_id, app.site_id)

        app.retrying(attempt)
        raise ScanRefused(mismatch, "bedside scan")


def _malformed(din_text: str, din_problem: str, wristband_coi: str, coi_problem: str) -> str:
    """Why the scanned labels are not a DIN and a COI (each problem "" when it is one)."""
    problems = []
    if din_problem:
        problems.append(f"the unit label {din_text!r} is not a DIN: {din_problem}")
    if coi_problem:
        problems.append(f"the wristband {wristband_coi!r} is not a COI: {coi_problem}")
    return "; ".join(problems)
