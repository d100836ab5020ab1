"""Which shipments each unit was listed on (INTERNAL: never published).

A unit's custodian outside a shipment is the site that last received it (or its first
custodian from the other context's events); while a shipment is open, the shipment holds it.
One `UnitListing` per unit serialises shipment creation: two shipments racing for the same
unit collide on its version (optimistic concurrency) and the loser re-checks.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_platform.attribution import Attribution
from v2v_platform.domain_events import LocalCreated, LocalEvent, local

NAMESPACE = UUID("8e0f4b52-6a1c-5d3e-9b7f-2c4a6e8d0f13")


class UnitListing(Aggregate):
    class Created(LocalCreated):
        din_data: str

    class Listed(LocalEvent):
        shipment_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.shipment_ids.append(self.shipment_id)

    def __init__(self, din_data: str, **_: Any) -> None:
        self.din_data = din_data
        self.shipment_ids: list[str] = []

    @staticmethod
    def create_id(din_data: str) -> UUID:
        return uuid5(NAMESPACE, f"unit:{din_data}")

    @classmethod
    def start(cls, din_data: str, by: Attribution) -> UnitListing:
        listing: UnitListing = cls._create(
            cls.Created, id=cls.create_id(din_data), din_data=din_data, **local(by)
        )
        return listing

    def list_on(self, shipment_id: str, by: Attribution) -> None:
        self.trigger_event(self.Listed, shipment_id=shipment_id, **local(by))
