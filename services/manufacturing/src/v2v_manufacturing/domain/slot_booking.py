"""One booked manufacturing slot, on the booked COI's chain (PUBLISHED).

The capacity is held in the internal `SlotCalendar`; this aggregate is the booking as a fact
of the COI's chain of identity: its events are published under the booked COI. Its id is
derived from the slot id, so recording a slot's booking twice (a retry after a crash between
the calendar's save and this one) collides in the event store instead of making a second
booking. Events are authored (and signed) by the manufacturing site; the requesting
collection site is a field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_manufacturing.domain.calendar import Reservation
from v2v_platform.attribution import Attribution
from v2v_platform.domain_events import AttributedCreated, AttributedEvent, attributed
from v2v_platform.errors import NotFound

NAMESPACE = UUID("0f4e9b6a-7c21-5d38-9a4e-b1c2d3e4f5a6")


class SlotStatus(StrEnum):
    BOOKED = "booked"
    RELEASED = "released"


def slot_booking_id(slot_id: str) -> UUID:
    return uuid5(NAMESPACE, f"slot:{slot_id}")


class SlotBooking(Aggregate):
    class Booked(AttributedCreated):
        manufacturing_site_id: str
        slot_id: str
        slot_date: str  # ISO 8601 date
        booking_site_id: str

    class Released(AttributedEvent):
        manufacturing_site_id: str
        slot_id: str
        slot_date: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = SlotStatus.RELEASED

    def __init__(
        self,
        coi: str,
        manufacturing_site_id: str,
        slot_id: str,
        slot_date: str,
        booking_site_id: str,
        **_: Any,
    ) -> None:
        self.coi = coi
        self.manufacturing_site_id = manufacturing_site_id
        self.slot_id = slot_id
        self.slot_date = slot_date
        self.booking_site_id = booking_site_id
        self.status = SlotStatus.BOOKED

    @property
    def is_booked(self) -> bool:
        return self.status is SlotStatus.BOOKED

    @classmethod
    def book(
        cls, reservation: Reservation, manufacturing_site_id: str, slot_date: str, by: Attribution
    ) -> SlotBooking:
        booking: SlotBooking = cls._create(
            cls.Booked,
            id=slot_booking_id(reservation.slot_id),
            manufacturing_site_id=manufacturing_site_id,
            slot_id=reservation.slot_id,
            slot_date=slot_date,
            booking_site_id=reservation.booking_site_id,
            **attributed(by, reservation.coi),
        )
        return booking

    def release(self, by: Attribution) -> None:
        if not self.is_booked:
            raise NotFound(f"slot {self.slot_id} is not booked")
        self.trigger_event(
            self.Released,
            manufacturing_site_id=self.manufacturing_site_id,
            slot_id=self.slot_id,
            slot_date=self.slot_date,
            **attributed(by, self.coi),
        )
