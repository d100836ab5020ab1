"""Infusion of a bedside-verified unit (I4) and the adverse events that follow it.

The infusion is by one verifier witnessed by the other, with a dose and a volume; the witness
is proven: they re-authenticate against this site's signer store (signer role "nurse", meaning
"witness": `domain.bedside.WITNESS_CHECK`), and their signature, bound to the infusion's
record, is on the event. Whether the unit still belongs here (its patient treated here, never
infused anywhere: `domain.site_rules`), its release, post-release failures and window are
checked again when it is administered (they may have changed since the bedside verification),
at the infusion's clinical time (`administered_at`, else now: an infusion entered after the fact
is judged by when it happened), which cannot precede the verification.
Adverse events (ASTCT CRS / ICANS grades 1-4) are recorded only after the infusion (not
refused for an infused unit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from v2v_infusion.domain.bedside import WITNESS_CHECK, check_infusable, infusion_record
from v2v_infusion.domain.values import (
    InfusionRefused,
    check_dose,
    check_grade,
    operator,
    parse_adverse_kind,
)
from v2v_infusion.views import ProductUnitView
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.esign import SignatureRequest
from v2v_platform.esign.persons import prove

if TYPE_CHECKING:
    from v2v_infusion.application import InfusionApplication

log = logging.getLogger("v2v.infusion")


@dataclass(frozen=True)
class Administration:
    din: str
    administered_at: datetime | None
    dose_car_cells_per_kg: float
    volume_ml: float
    witness_user_id: str
    witness_printed_name: str
    witness_signature: SignatureRequest | None
    """The witness's re-authentication (meaning "witness"), proving the second person."""


@dataclass(frozen=True)
class AdverseEventReport:
    din: str
    kind: str
    grade: int
    onset_at: datetime | None
    notes: str = ""


class InfusionAndAdverseEvents:
    def __init__(self, app: InfusionApplication) -> None:
        self.app = app

    def administer(self, given: Administration, by: Attribution) -> ProductUnitView:
        app = self.app
        by = app.check_local(by)
        check_dose(given.dose_car_cells_per_kg, given.volume_ml)
        witness = operator(given.witness_user_id, given.witness_printed_name)
        moment = app.when(given.administered_at, "administered_at")
        dose, volume = given.dose_car_cells_per_kg, given.volume_ml
        unit = app.units.received(given.din)
        unit.check_administration(by.user_id, witness["user_id"])
        record = infusion_record(unit, moment, dose, volume, by.user_id)
        request = given.witness_signature
        proof = prove(app.signer, app.site_id, request, WITNESS_CHECK, witness["user_id"], record)

        def attempt() -> ProductUnitView:
            unit = app.units.received(given.din)
            unit.check_administration(by.user_id, proof.user_id)
            release = app.facts.release_of(unit.batch_id)
            unacknowledged = app.units.unacknowledged(unit.batch_id)
            fresh_window = app.rules.fresh_product
            refused = app.units.misplaced(unit.din, unit.coi) or check_infusable(
                unit, release, unacknowledged, moment, fresh_window
            )
            if refused is not None:
                log.warning("infusion of %s refused at %s: %s", unit.din, app.site_id, refused)
                raise InfusionRefused(refused)
            unit.administer(moment, dose, volume, proof, release.status.value, by)
            app.save(unit)
            return app.units.view(unit)

        return app.retrying(attempt)

    def record_adverse_event(self, report: AdverseEventReport, by: Attribution) -> ProductUnitView:
        app = self.app
        by = app.check_local(by)
        kind = parse_adverse_kind(report.kind)
        grade = check_grade(report.grade)
        limits.check_free_text(report.notes, "notes")
        onset = app.when(report.onset_at, "onset_at")

        def attempt() -> ProductUnitView:
            unit = app.units.received(report.din)
            unit.record_adverse_event(kind.value, grade, onset, report.notes, by)
            app.save(unit)
            return app.units.view(unit)

        return app.retrying(attempt)
