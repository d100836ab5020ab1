"""Infusion of a bedside-verified unit (I4) and the adverse events that follow it.

The infusion is by one verifier witnessed by the other, with a dose and a volume. Whether the
unit still belongs here (its patient treated here, never infused anywhere: `domain.site_rules`),
its release, post-release failures and window are checked again when it is administered (they
may have changed since the bedside verification). Adverse events (ASTCT CRS / ICANS grades
1-4) are recorded only after the infusion (not refused for an infused unit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from v2v_infusion.domain.bedside import check_infusable
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

        def attempt() -> ProductUnitView:
            unit = app.units.received(given.din)
            unit.check_administration(by.user_id, witness["user_id"])
            release = app.facts.release_of(unit.batch_id)
            unacknowledged = app.units.unacknowledged(unit.batch_id)
            checked_at = max(moment, app.clock())
            fresh_window = app.rules.fresh_product
            refused = app.units.misplaced(unit.din, unit.coi) or check_infusable(
                unit, release, unacknowledged, checked_at, fresh_window
            )
            if refused is not None:
                log.warning("infusion of %s refused at %s: %s", unit.din, app.site_id, refused)
                raise InfusionRefused(refused)
            dose, volume = given.dose_car_cells_per_kg, given.volume_ml
            unit.administer(moment, dose, volume, witness, release.status.value, by)
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
