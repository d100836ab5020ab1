"""The infusion application at one treating site: commands and queries over plain values.

Methods take plain values plus the acting `Attribution`, raise `DomainError`s and return the
plain values of `views`. Receipt, storage, thaw and bedside scans are in `scans` (refused
scans are recorded before the refusal is raised, I2); here: infusion, adverse events, and
post-release failure alerts with their e-signed acknowledgement. Every change is saved under
optimistic concurrency and retried from a fresh read when another change won the race.

Facts from other contexts (product units, release status, post-release failures, treating
sites) come only from this service's own projection of their Kafka events (`InfusionFacts`).
This application's notification log is the outbox: each aggregate belongs to ONE chain of
identity and each event carries its valid COI, the Kafka key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from v2v_infusion.core import NotWired, parse_din
from v2v_infusion.domain.acknowledgement import (
    FailureAcknowledgement,
    check_decision,
    signed_record,
)
from v2v_infusion.domain.bedside import check_infusable
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import (
    PHYSICIAN,
    FailureAlert,
    InfusionRefused,
    check_dose,
    check_grade,
    operator,
    parse_adverse_kind,
)
from v2v_infusion.scans import BedsideCommands
from v2v_infusion.views import AlertView, ProductUnitView
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Conflict, InvalidInput, NotFound, Refused
from v2v_platform.esign import ESigner, SignatureRequest

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


class InfusionApplication(BedsideCommands):
    def __init__(
        self, env: dict[str, str] | None = None, *, signer: ESigner | None = None, **kw: Any
    ) -> None:
        super().__init__(env, **kw)
        self._signer = signer

    @property
    def signer(self) -> ESigner:
        if self._signer is None:
            raise NotWired("the infusion application was built without its e-signer")
        return self._signer

    # infusion and adverse events

    def administer_infusion(self, given: Administration, by: Attribution) -> ProductUnitView:
        self._check_local(by)
        check_dose(given.dose_car_cells_per_kg, given.volume_ml)
        witness = operator(given.witness_user_id, given.witness_printed_name)
        moment = self._when(given.administered_at, "administered_at")

        def attempt() -> ProductUnitView:
            unit = self._received(given.din)
            unit.check_administration(by.user_id, witness["user_id"])
            release = self.facts.release_of(unit.batch_id)
            unacknowledged = self._unacknowledged(unit.batch_id)
            checked_at = max(moment, self.clock())
            fresh_window = self.windows.fresh_product
            refused = check_infusable(unit, release, unacknowledged, checked_at, fresh_window)
            if refused is not None:
                log.warning("infusion of %s refused at %s: %s", unit.din, self.site_id, refused)
                raise InfusionRefused(refused)
            dose, volume = given.dose_car_cells_per_kg, given.volume_ml
            unit.administer(moment, dose, volume, witness, release.status.value, by)
            self.save(unit)
            return self._view(unit)

        return self._retrying(attempt)

    def record_adverse_event(self, report: AdverseEventReport, by: Attribution) -> ProductUnitView:
        self._check_local(by)
        kind = parse_adverse_kind(report.kind)
        grade = check_grade(report.grade)
        onset = self._when(report.onset_at, "onset_at")

        def attempt() -> ProductUnitView:
            unit = self._received(report.din)
            unit.record_adverse_event(kind.value, grade, onset, report.notes, by)
            self.save(unit)
            return self._view(unit)

        return self._retrying(attempt)

    def product_unit(self, din_text: str) -> ProductUnitView:
        din = parse_din(din_text)
        unit = self._unit_here(din)
        if unit is not None:
            return self._view(unit)
        product = self.facts.product_unit(din.data)
        if product is None:
            raise NotFound(f"no product unit {din} is known at {self.site_id}")
        release = self.facts.release_of(product.batch_id)
        unacknowledged = self._unacknowledged(product.batch_id)
        return ProductUnitView.expected(product, release, unacknowledged)

    # post-release failure alerts

    def list_alerts(self, unacknowledged_only: bool = False) -> list[AlertView]:
        """Failures of COIs treated here or of batches with a unit received here."""
        views = [
            AlertView.of(alert, self._acknowledgement(alert.failure_id))
            for alert in self.facts.failures()
            if self._concerns_this_site(alert)
        ]
        return [view for view in views if not (unacknowledged_only and view.acknowledged)]

    def acknowledge_alert(
        self, failure_id: str, decision: str, request: SignatureRequest, by: Attribution
    ) -> AlertView:
        """The treating physician's e-signed acknowledgement (signer role "physician")."""
        self._check_local(by)
        alert = self._alert(failure_id)
        text = check_decision(decision)
        if request.user_id != by.user_id:
            raise InvalidInput(
                f"the acknowledgement is recorded by {by.user_id} but signed by"
                f" {request.user_id}: the physician signs their own acknowledgement"
            )
        self._check_unacknowledged(alert)
        signature = self.signer.sign(self.site_id, request, PHYSICIAN, signed_record(alert, text))
        acknowledgement = FailureAcknowledgement.acknowledge(
            alert, text, signature, self.clock(), by
        )
        try:
            self.save(acknowledgement)
        except IntegrityError:
            self._check_unacknowledged(alert)
            raise Conflict(f"failure {alert.failure_id} changed meanwhile; try again") from None
        return AlertView.of(alert, acknowledgement)

    def _alert(self, failure_id: str) -> FailureAlert:
        alert = self.facts.failure(failure_id.strip())
        if alert is None or not self._concerns_this_site(alert):
            raise NotFound(f"no post-release failure {failure_id!r} is known at {self.site_id}")
        return alert

    def _check_unacknowledged(self, alert: FailureAlert) -> None:
        earlier = self._acknowledgement(alert.failure_id)
        if earlier is not None:
            signer = earlier.physician_signature["printed_name"]
            raise Refused(
                f"failure {alert.failure_id} was already acknowledged at {self.site_id} by"
                f" {signer} ({earlier.acknowledged_at.isoformat()}): {earlier.decision}"
            )

    def _concerns_this_site(self, alert: FailureAlert) -> bool:
        if self.facts.treating_site_of(alert.coi) == self.site_id:
            return True
        return any(self._received_here(din) for din in alert.product_dins)

    def _received_here(self, din: str) -> bool:
        unit_id = ProductAtSite.create_id(self.site_id, din[:13])
        return self._find(ProductAtSite, unit_id) is not None
