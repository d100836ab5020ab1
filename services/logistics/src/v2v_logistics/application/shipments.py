"""Creating shipments (one COI, units verified facts relate to the shipper and in its custody,
one condition, the earliest stability window of the units, never a unit verified facts bind
to two COIs (`identity-conflict`); from the calling site or one of its departments, to
another site or, within the site, from one department to another) and assigning their
courier (the custodian that assigns the courier offers it the shipment). A shipment is created
at the clinical time the origin gives (`created_at`: when it was packed; default now, never in
the future beyond the clock skew)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from v2v_logistics.domain.matching import OTHER_COI, UNKNOWN_UNIT, Mismatch
from v2v_logistics.domain.parties import UnitCustody, check_shippable, route_problem
from v2v_logistics.domain.shipment import Shipment, ShipmentPlan
from v2v_logistics.domain.values import (
    KnownUnit,
    ScanAttempt,
    ShipmentStatus,
    courier_party,
    parse_courier_id,
    parse_department,
    parse_site,
    require_text,
    site_party,
)
from v2v_logistics.domain.windows import shipment_window
from v2v_logistics.views import ShipmentView
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, NotFound, Refused
from v2v_platform.ids import Din
from v2v_platform.service_application import parse_din

if TYPE_CHECKING:
    from v2v_logistics.application import LogisticsApplication


@dataclass(frozen=True)
class NewShipment:
    manifest: Sequence[str]
    condition: Condition
    destination_site_id: str
    shipper_id: str
    data_logger_id: str
    courier_id: str = ""
    origin_department: str = ""
    """The calling site's department that ships it ("": the site as a whole); the caller
    acts in the role that department stands for."""
    destination_department: str = ""
    """The destination's department that takes it ("": the destination site as a whole)."""
    created_at: datetime | None = None
    """When it was created (packed) at the origin: the clinical time (None: now)."""


class ScanRefusedAtCreation(Refused):
    """A shipment was refused because of one of its units (nothing was recorded: no chain yet)."""

    def __init__(self, reason_code: str, explanation: str) -> None:
        super().__init__(explanation)
        self.reason_code = reason_code


class UnitNotFound(NotFound):
    """A unit on a new shipment's manifest that nobody knows here, or that verified facts do
    not relate to the shipper: both answered alike, as if absent (NOT_FOUND / 404, reason
    code `unknown-unit`), and nothing is recorded."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(f"{mismatch.reason_code}: {mismatch.explanation}")
        self.reason_code = mismatch.reason_code


class Shipments:
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    def create(self, request: NewShipment, by: Attribution) -> ShipmentView:
        if not request.manifest:
            raise InvalidInput("a shipment needs at least one unit on its manifest")
        limits.check_items(request.manifest, "manifest")
        limits.check_id(request.shipper_id, "shipper_id")
        limits.check_id(request.data_logger_id, "data_logger_id")
        dins = [parse_din(text) for text in request.manifest]
        if len({din.data for din in dins}) != len(dins):
            raise InvalidInput("a unit is listed twice on the manifest")
        destination = parse_site(request.destination_site_id, "destination site")
        origin = self.app.acting_party(by, request.origin_department)
        destination_department = parse_department(request.destination_department)
        wrong_route = route_problem(origin, site_party(destination, destination_department))
        if wrong_route is not None:
            raise InvalidInput(wrong_route)
        if request.courier_id:
            parse_courier_id(request.courier_id)
        created_at = self.app.when(request.created_at, "created_at")

        def attempt() -> ShipmentView:
            units = [self._shippable(din, origin) for din in dins]
            plan = self._plan(units, request, by.site_id, destination)
            shipment = Shipment.create(uuid4(), plan, created_at, self.app.authored(by))
            self.app.unpublished.list_units([u.din_data for u in units], shipment.shipment_id, by)
            self.app.save(shipment)
            return ShipmentView.of(shipment)

        return self.app.retrying(attempt)

    def _shippable(self, din: Din, origin: str) -> KnownUnit:
        unit = self.app.facts.unit(din.data)
        custody = self.unit_custody(unit) if unit is not None else None
        found = check_shippable(str(din), unit, custody, origin)
        if isinstance(found, Mismatch):
            if found.reason_code == UNKNOWN_UNIT:
                raise UnitNotFound(found)
            raise ScanRefusedAtCreation(found.reason_code, found.explanation)
        conflict = self.app.identities.identity_conflict(din.data)
        if conflict is not None:  # bound to two COIs: nobody may ship it (issue 14, I1)
            raise ScanRefusedAtCreation(conflict.reason_code, conflict.explanation)
        return found

    def _plan(
        self, units: Sequence[KnownUnit], request: NewShipment, origin: str, destination: str
    ) -> ShipmentPlan:
        cois = sorted({unit.coi for unit in units})
        if len(cois) > 1:
            raise ScanRefusedAtCreation(
                OTHER_COI, f"a shipment carries ONE COI; the units belong to {', '.join(cois)}"
            )
        mixed = [u.din for u in units if u.condition is not request.condition]
        if mixed:
            raise Refused(
                f"unit(s) {', '.join(mixed)} are not held {request.condition.value}; a shipment"
                " has one condition"
            )
        window = shipment_window(units, self.app.rules)
        return ShipmentPlan(
            coi=cois[0],
            manifest=tuple(u.din for u in units),
            condition=request.condition,
            origin_site_id=origin,
            destination_site_id=destination,
            shipper_id=require_text("shipper/dewar id", request.shipper_id),
            data_logger_id=require_text("data-logger id", request.data_logger_id),
            courier_id=request.courier_id,
            window_ends_at=window.ends_at,
            window_rule=window.rule,
            protocol_rules=self.app.rules.tag,
            origin_department=parse_department(request.origin_department),
            destination_department=parse_department(request.destination_department),
        )

    def unit_custody(self, unit: KnownUnit) -> UnitCustody:
        """Who holds the unit now (an open shipment's custodian, else the last receiver) and
        every party that held it (its first custodian, the origins and the receivers of its
        shipments: sites or their departments): the parties verified facts and this service's
        records relate to it."""
        custodian = unit.first_custodian
        held = {custodian}
        for shipment_id in self.app.unpublished.shipments_of(unit.din_data):
            shipment = self.app.find(Shipment, UUID(shipment_id))
            if shipment is None:
                continue  # listed, but its shipment was never saved
            held.add(shipment.origin_party)
            if shipment.status.is_moving:
                custodian = f"shipment:{shipment.shipment_id}"
            elif shipment.status in (ShipmentStatus.DELIVERED, ShipmentStatus.RECEIPT_INSPECTED):
                custodian = shipment.destination_party
                held.add(custodian)
            else:
                custodian = shipment.custodian
        return UnitCustody(custodian, frozenset(held))

    def assign_courier(
        self, shipment_id: str, courier_id: str, by: Attribution, department: str = ""
    ) -> ShipmentView:
        """Origin or destination assigns the courier; when the assigning site (or its
        `department`) holds the shipment, it offers it to that courier too."""
        parse_courier_id(courier_id)
        giver = self.app.acting_party(by, department)

        def change(shipment: Shipment) -> None:
            self.app.check_party_site(shipment, by, "assign a courier to")
            authored = self.app.authored(by)
            shipment.assign_courier(courier_id, authored)
            courier = courier_party(courier_id)
            if shipment.custodian == giver and shipment.offered_to != courier:
                at = max(self.app.clock(), shipment.created_at)  # created within the skew
                offer = ScanAttempt(f"assign:{uuid4()}", at, giver, courier)
                shipment.offer_handoff(offer, self.app.parties_of(shipment), authored)

        return self.app.change(shipment_id, self.app.site_caller(by), change)
