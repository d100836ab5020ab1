"""Receipt, storage and thaw of product units at this treating site.

Only a unit known from manufacturing's events is received, once, and only when it belongs
here (`domain.site_rules`: its patient is treated at this site, it was never infused
anywhere). A refused receipt scan is recorded in the unpublished records BEFORE `ScanRefused`
is raised (a receipt scan names only a DIN: no chain to publish it on, and a refused receipt
relates this site to no chain). Storage and thaw check again that the unit still belongs here
(`StepRefused`). The post-thaw window is the site's `rules.post_thaw`.

Each step is at its clinical time (as given, else now; never in the future beyond the clock
skew) and keeps the order of the chain (`domain.clinical_order`): the receipt not before the
product's release as release's events tell it (a unit whose release is not known here yet is
received, as before: the bedside refuses it until released) nor before its delivery to this
site as logistics' `ShipmentDelivered` tells it (a unit no known shipment delivered here, as
to an in-house ward, is received as before), storage and thaw not before the receipt (nor the
storage).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from eventsourcing.persistence import IntegrityError

from v2v_infusion.domain.mismatches import RECEIPT
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import (
    MALFORMED_LABEL,
    UNKNOWN_UNIT,
    Mismatch,
    ScanRefused,
    StepRefused,
)
from v2v_infusion.views import ProductUnitView
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Refused
from v2v_platform.service_application import din_or_problem

if TYPE_CHECKING:
    from v2v_infusion.application import InfusionApplication

log = logging.getLogger("v2v.infusion")


class ReceiptAndStorage:
    def __init__(self, app: InfusionApplication) -> None:
        self.app = app

    def receive(
        self, din_text: str, received_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        app = self.app
        by = app.check_local(by)
        moment = app.when(received_at, "received_at")
        din_text = limits.echo(din_text)  # what a refusal records and repeats of the label
        din, problem = din_or_problem(din_text)
        if din is None:
            mismatch = Mismatch(MALFORMED_LABEL, f"the label {din_text!r} is not a DIN: {problem}")
            self._refuse(din_text, mismatch, moment, by)
        product = app.facts.product_unit(din.data)
        if product is None:
            mismatch = Mismatch(
                UNKNOWN_UNIT, f"no product unit {din} is known from manufacturing: STOP"
            )
            self._refuse(din_text, mismatch, moment, by)
        misplaced = app.units.misplaced(product.din, product.coi)
        if misplaced is not None:
            self._refuse(din_text, misplaced, moment, by)
        if app.units.find(din) is not None:
            raise Refused(f"unit {din} was already received at {app.site_id}")
        released_at = app.facts.release_of(product.batch_id).released_at
        delivered_at = app.facts.delivered_at(din.data, app.site_id)
        unit = ProductAtSite.receive(product, app.site_id, moment, by, released_at, delivered_at)
        try:
            app.save(unit)
        except IntegrityError:
            raise Refused(f"unit {din} was already received at {app.site_id}") from None
        return app.units.view(unit)

    def store(
        self, din_text: str, location: str, stored_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        by = self.app.check_local(by)
        moment = self.app.when(stored_at, "stored_at")
        limits.check_name(location, "location")

        def attempt() -> ProductUnitView:
            unit = self._still_here(din_text, "storage")
            unit.store(location, moment, by)
            self.app.save(unit)
            return self.app.units.view(unit)

        return self.app.retrying(attempt)

    def start_thaw(
        self, din_text: str, thaw_started_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        by = self.app.check_local(by)
        moment = self.app.when(thaw_started_at, "thaw_started_at")

        def attempt() -> ProductUnitView:
            unit = self._still_here(din_text, "thaw")
            unit.start_thaw(moment, self.app.rules, by)
            self.app.save(unit)
            return self.app.units.view(unit)

        return self.app.retrying(attempt)

    def _still_here(self, din_text: str, step: str) -> ProductAtSite:
        """The unit received here, when it still belongs here; StepRefused otherwise."""
        unit = self.app.units.received(din_text)
        misplaced = self.app.units.misplaced(unit.din, unit.coi)
        if misplaced is not None:
            log.warning("%s of %s refused at %s: %s", step, unit.din, self.app.site_id, misplaced)
            raise StepRefused(misplaced, step)
        return unit

    def _refuse(
        self, scanned_din: str, mismatch: Mismatch, moment: datetime, by: Attribution
    ) -> NoReturn:
        scan_id = self.app.unpublished.record_unattributable_scan(
            RECEIPT, scanned_din, "", mismatch, moment, by
        )
        log.warning(
            "receipt scan %s refused at %s (%s): %s",
            scan_id,
            self.app.site_id,
            mismatch.reason_code,
            mismatch.explanation,
        )
        raise ScanRefused(mismatch, "receipt")
