"""What sites and couriers read.

A site reads a shipment it is a party to (origin, destination, or, in its courier role, the
company of the assigned courier); auditors read every shipment; to any other site a shipment
does not exist (`Scope`, `domain.parties`). A courier's identity is their courier token: they
read the shipments assigned to or held by them."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from v2v_logistics.domain.parties import Caller
from v2v_logistics.domain.shipment import Shipment
from v2v_logistics.domain.values import courier_party
from v2v_logistics.views import CourierShipmentView, ShipmentView
from v2v_platform.scope import Scope

if TYPE_CHECKING:
    from v2v_logistics.application import LogisticsApplication


class ShipmentQueries:
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    def shipment(self, shipment_id: str, scope: Scope) -> ShipmentView:
        return ShipmentView.of(self.app.visible(shipment_id, scope))

    def courier_shipments(self, courier_id: str) -> list[CourierShipmentView]:
        """Shipments assigned to (or held by) the courier, not yet delivered."""
        party = courier_party(courier_id)
        found = []
        for shipment_id in self.app.courier_index.shipments_of_courier(courier_id):
            shipment = self.app.find(Shipment, UUID(shipment_id))
            if shipment is None or not shipment.status.is_moving:
                continue
            if shipment.assigned_courier_id == courier_id or shipment.custodian == party:
                view = ShipmentView.of(shipment)
                found.append(CourierShipmentView(view, shipment.scanned_by(party)))
        return found

    def courier_shipment(self, shipment_id: str, courier_id: str) -> CourierShipmentView:
        shipment = self.app.related(shipment_id, Caller.courier(courier_id))
        return CourierShipmentView(
            ShipmentView.of(shipment), shipment.scanned_by(courier_party(courier_id))
        )
