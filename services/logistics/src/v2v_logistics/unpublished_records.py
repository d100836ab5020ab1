"""Logistics state that belongs to no chain of identity (never relayed to Kafka).

Which shipments each unit was listed on (to know its custodian between shipments and to keep
a unit on one open shipment at a time). None of it is published: every event on
`v2v.logistics.events.v1` is keyed by its COI. These records have their own event store: in
PostgreSQL the same database with their own tables, in SQLite their own file, in memory
(POPO) in unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from v2v_logistics.domain.unit_listing import UnitListing
from v2v_platform.attribution import Attribution
from v2v_platform.service_application import UnpublishedRecords


class LogisticsUnpublishedRecords(UnpublishedRecords):
    name = "LogisticsRegisters"
    """The stored name (tables, environment prefix): kept, so existing records stay found."""

    def shipments_of(self, din_data: str) -> list[str]:
        listing = self.find(UnitListing, UnitListing.create_id(din_data))
        return list(listing.shipment_ids) if listing else []

    def list_units(self, din_datas: Sequence[str], shipment_id: str, by: Attribution) -> None:
        """List the units on the shipment in one save (IntegrityError when another won)."""
        listings = []
        for din_data in din_datas:
            listing = self.find(UnitListing, UnitListing.create_id(din_data))
            listing = listing or UnitListing.start(din_data, by)
            listing.list_on(shipment_id, by)
            listings.append(listing)
        self.save(*listings)
