"""Product labels: the ISBT 128 label of a product unit this site harvested, to this site
only (NotFound, as if absent, to any other site and for a DIN it did not issue)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from v2v_manufacturing.domain.batch import Batch
from v2v_platform.errors import NotFound
from v2v_platform.labels import NO_PRODUCT_CODES, Label, ProductCodes
from v2v_platform.labels.service import unit_label
from v2v_platform.scope import Scope
from v2v_platform.service_application import parse_din

if TYPE_CHECKING:
    from v2v_manufacturing.application import ManufacturingApplication


class ProductLabels:
    def __init__(self, app: ManufacturingApplication, codes: ProductCodes = NO_PRODUCT_CODES):
        self.app = app
        self.codes = codes

    def label(
        self,
        din_text: str,
        scope: Scope,
        product_code: str | None = None,
        expires_at: datetime | None = None,
    ) -> Label:
        din = parse_din(din_text)
        hidden = NotFound(f"no product unit {din} is visible to site {scope.site_id}")
        batch_id = self.app.unpublished.batch_of_product_din(din)
        batch = self.app.find(Batch, UUID(batch_id)) if batch_id else None
        if batch is None or not scope.relates_to([batch.manufacturing_site_id]):
            raise hidden
        issued = [text for text in batch.product_dins if parse_din(text).data == din.data]
        if not issued:
            raise hidden
        lines = (
            f"Manufactured at {batch.manufacturing_site_id}",
            f"FIN {self.app.fin}",
            f"Batch {batch.batch_id}",
        )
        product = parse_din(issued[0])
        return unit_label(product, batch.coi, self.codes, product_code, expires_at, lines)
