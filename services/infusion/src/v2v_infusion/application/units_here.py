"""The product units at this site: the lookups the use cases share, the view every command
returns, and the product unit read (`product_unit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.product import ProductAtSite
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
        """The unit as received here, else as expected from manufacturing; NotFound when it is
        unknown, or for a caller of another site (the records here relate to this site)."""
        din = parse_din(din_text)
        scope.require_sees([self.app.site_id], f"product unit {din}")
        unit = self.find(din)
        if unit is not None:
            return self.view(unit)
        product = self.app.facts.product_unit(din.data)
        if product is None:
            raise NotFound(f"no product unit {din} is known at {self.app.site_id}")
        release = self.app.facts.release_of(product.batch_id)
        unacknowledged = self.unacknowledged(product.batch_id)
        return ProductUnitView.expected(product, release, unacknowledged)
