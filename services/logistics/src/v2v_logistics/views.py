"""Plain values the application returns to its adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from v2v_logistics.domain.shipment import Shipment
from v2v_logistics.domain.temperatures import Excursion


@dataclass(frozen=True)
class ExcursionView:
    device_id: str
    started_at: datetime
    ended_at: datetime
    duration_seconds: float
    min_c: float
    max_c: float

    @classmethod
    def of(cls, excursion: Excursion) -> ExcursionView:
        return cls(
            excursion.device_id,
            excursion.started_at,
            excursion.ended_at,
            excursion.duration.total_seconds(),
            excursion.min_c,
            excursion.max_c,
        )


@dataclass(frozen=True)
class ShipmentView:
    shipment_id: str
    coi: str
    status: str
    condition: str
    origin_site_id: str
    destination_site_id: str
    custodian: str
    manifest: list[str]
    shipper_id: str
    data_logger_id: str
    assigned_courier_id: str
    window_ends_at: datetime | None
    window_breached: bool
    excursions: list[ExcursionView]
    exception_kind: str
    offered_to: str = ""
    """The party the custodian offered the shipment to ("" when no handoff is offered)."""
    origin_party: str = ""
    destination_party: str = ""
    """`site:<ID>`, or `site:<ID>/<department>` when it goes from or to a department."""
    created_at: datetime | None = None
    received_at: datetime | None = None
    """When it was created (packed) and received (None: not yet): clinical times, as given."""

    @classmethod
    def of(cls, shipment: Shipment) -> ShipmentView:
        return cls(
            shipment.shipment_id,
            shipment.coi,
            shipment.status.value,
            shipment.condition.value,
            shipment.origin_site_id,
            shipment.destination_site_id,
            shipment.custodian,
            list(shipment.manifest),
            shipment.shipper_id,
            shipment.data_logger_id,
            shipment.assigned_courier_id,
            shipment.window_ends_at,
            shipment.window_breached,
            [ExcursionView.of(e) for e in shipment.excursions],
            shipment.exception_kind.value if shipment.exception_kind else "",
            shipment.offered_to,
            shipment.origin_party,
            shipment.destination_party,
            shipment.created_at,
            shipment.received_at,
        )


@dataclass(frozen=True)
class CourierShipmentView:
    """A shipment as one courier sees it: with the units they scanned for its handoff."""

    shipment: ShipmentView
    scanned: list[str]


@dataclass(frozen=True)
class ReadingsView:
    recorded: int
    excursions: list[ExcursionView]
