"""The product units at this site: the lookups the use cases share, whether a unit belongs
here (`misplaced`, `domain.site_rules`), the view every command returns, and the product unit
read (`product_unit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.site_rules import check_belongs_here
from v2v_infusion.domain.values import Mismatch
from v2v_infusion.views import ProductUnitView
from v2v_platform.errors import NotFound
from v2v_platform.ids import Din
from v2v_platform.scope import Scope
from v2v_platform.service_application import parse_din

if TYPE_CHECKING:
    from v2v_infusion.application import InfusionApplication


class UnitsHere:
    def __init__(self, app: InfusionApplication) -> None:
        self.app = app

    def find(self, din: Din) -> ProductAtSite | None:
        """The unit received at this site, None when it was not."""
        return self.app.find(ProductAtSite, ProductAtSite.create_id(self.app.site_id, din.data))

    def received(self, din_text: str) -> ProductAtSite:
        """The unit received at this site; NotFound when it was not."""
        din = parse_din(din_text)
        unit = self.find(din)
        if unit is None:
            raise NotFound(f"unit {din} has not been received at {self.app.site_id}")
        return unit

    def treats(self, coi: str) -> bool:
        """Whether intake's enrolment names this site as the COI's treating site."""
        return self.app.facts.treating_site_of(coi) == self.app.site_id

    def misplaced(self, din: str, coi: str) -> Mismatch | None:
        """Why unit `din` (of `coi`) does not belong here (`domain.site_rules`), None if it
        does: its DIN is bound to another COI too, its patient is treated elsewhere (or unknown
        here), or it was infused anywhere."""
        facts = self.app.facts
        product = facts.product_unit(din[:13])
        bound = (product.coi, *product.other_cois) if product is not None else ()
        return check_belongs_here(
            din,
            coi,
            facts.treating_site_of(coi),
            self.app.site_id,
            facts.infusions_of(din[:13]),
            tuple(dict.fromkeys(other for other in bound if other != coi)),
        )

    def acknowledgement(self, failure_id: str) -> FailureAcknowledgement | None:
        """This site's acknowledgement of the failure, if any."""
        ack_id = FailureAcknowledgement.create_id(self.app.site_id, failure_id)
        return self.app.find(FailureAcknowledgement, ack_id)

    def unacknowledged(self, batch_id: str) -> list[str]:
        """Post-release failures of the batch not yet acknowledged at this site."""
        return [
            failure.failure_id
            for failure in self.app.facts.failures_of_batch(batch_id)
            if self.acknowledgement(failure.failure_id) is None
        ]

    def view(self, unit: ProductAtSite) -> ProductUnitView:
        release = self.app.facts.release_of(unit.batch_id)
        unacknowledged = self.unacknowledged(unit.batch_id)
        return ProductUnitView.of(unit, release, unacknowledged, self.app.rules.fresh_product)

    def product_unit(self, din_text: str, scope: Scope) -> ProductUnitView:
        """The unit as received here, else as expected from manufacturing for a patient treated
        here. NotFound, as if absent, when it is unknown, for a caller of another site (the
        records here relate to this site), and for another site's patient's unit (this site
        relates only to its own patients); an auditor reads every unit known here."""
        din = parse_din(din_text)
        scope.require_sees([self.app.site_id], f"product unit {din}")
        unit = self.find(din)
        if unit is not None:
            return self.view(unit)
        product = self.app.facts.product_unit(din.data)
        related = [self.app.site_id] if product and self.treats(product.coi) else []
        if product is None or not scope.sees(related):  # another site's patient: auditors only
            raise NotFound(f"no product unit {din} is known at {self.app.site_id}")
        release = self.app.facts.release_of(product.batch_id)
        unacknowledged = self.unacknowledged(product.batch_id)
        return ProductUnitView.expected(product, release, unacknowledged)
