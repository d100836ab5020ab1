"""Slot capacity calendar: one aggregate per manufacturing site and day.

Concurrent bookings race on the aggregate's version (optimistic concurrency): of two
bookings read at the same version only one can be saved, so a day is never overbooked.
Calendar events are site-level facts: they carry an empty COI (the booked COI is a field).
They are authored (and signed) by the manufacturing site; a booking's requesting collection
site is a field of the booking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_manufacturing.domain.events import AttributedCreated, AttributedEvent, attributed
from v2v_platform.attribution import Attribution
from v2v_platform.errors import InvalidInput, NotFound, Refused

NAMESPACE = UUID("5b0c86a4-1f55-5c0e-a7b2-3d8e4f9a6c21")
MAX_CAPACITY = 1000
SITE_LEVEL = ""  # calendar events belong to no single chain of identity


@dataclass(frozen=True)
class Booking:
    slot_id: str
    coi: str
    booking_site_id: str


def slot_id_for(site_id: str, day: date, number: int) -> str:
    return f"{site_id}/{day.isoformat()}/{number}"


def parse_slot_id(slot_id: str) -> tuple[str, date]:
    """The manufacturing site and day a slot id names (``SITE/YYYY-MM-DD/N``)."""
    parts = slot_id.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise InvalidInput(f"slot id {slot_id!r} is not SITE/YYYY-MM-DD/N")
    try:
        return parts[0], date.fromisoformat(parts[1])
    except ValueError:
        raise InvalidInput(f"slot id {slot_id!r} has no valid date") from None


def check_capacity(capacity: int) -> None:
    if not 0 <= capacity <= MAX_CAPACITY:
        raise InvalidInput(f"capacity must be between 0 and {MAX_CAPACITY}")


class SlotCalendar(Aggregate):
    class Opened(AttributedCreated):
        manufacturing_site_id: str
        slot_date: str  # ISO 8601 date
        capacity: int

    class CapacitySet(AttributedEvent):
        manufacturing_site_id: str
        slot_date: str
        capacity: int
        booked: int

        def apply(self, aggregate: Any) -> None:
            aggregate.capacity = self.capacity

    class SlotBooked(AttributedEvent):
        manufacturing_site_id: str
        slot_date: str
        slot_id: str
        booked_coi: str
        booking_site_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.slots_issued += 1
            aggregate.bookings[self.slot_id] = Booking(
                self.slot_id, self.booked_coi, self.booking_site_id
            )

    class SlotReleased(AttributedEvent):
        manufacturing_site_id: str
        slot_date: str
        slot_id: str
        booked_coi: str

        def apply(self, aggregate: Any) -> None:
            del aggregate.bookings[self.slot_id]

    def __init__(self, manufacturing_site_id: str, slot_date: str, capacity: int, **_: Any) -> None:
        self.manufacturing_site_id = manufacturing_site_id
        self.slot_date = date.fromisoformat(slot_date)
        self.capacity = capacity
        self.slots_issued = 0
        self.bookings: dict[str, Booking] = {}

    @staticmethod
    def create_id(manufacturing_site_id: str, slot_date: date) -> UUID:
        return uuid5(NAMESPACE, f"calendar:{manufacturing_site_id}:{slot_date.isoformat()}")

    @classmethod
    def open(
        cls, manufacturing_site_id: str, slot_date: date, capacity: int, by: Attribution
    ) -> SlotCalendar:
        check_capacity(capacity)
        return cls._create(
            cls.Opened,
            id=cls.create_id(manufacturing_site_id, slot_date),
            manufacturing_site_id=manufacturing_site_id,
            slot_date=slot_date.isoformat(),
            capacity=capacity,
            **attributed(by, SITE_LEVEL),
        )

    @property
    def booked(self) -> int:
        return len(self.bookings)

    def set_capacity(self, capacity: int, by: Attribution) -> None:
        check_capacity(capacity)
        if capacity < self.booked:
            raise Refused(
                f"capacity {capacity} is below the {self.booked} slots already booked on"
                f" {self.slot_date.isoformat()}; release bookings first"
            )
        self.trigger_event(
            self.CapacitySet, capacity=capacity, booked=self.booked, **self._fields(by)
        )

    def book(self, coi: str, booking_site_id: str, by: Attribution) -> str:
        if self.booked >= self.capacity:
            raise SlotsExhausted(
                f"{self.manufacturing_site_id} has no free slot on {self.slot_date.isoformat()}"
                f" ({self.booked} of {self.capacity} booked)"
            )
        slot_id = slot_id_for(self.manufacturing_site_id, self.slot_date, self.slots_issued + 1)
        self.trigger_event(
            self.SlotBooked,
            slot_id=slot_id,
            booked_coi=coi,
            booking_site_id=booking_site_id,
            **self._fields(by),
        )
        return slot_id

    def release(self, slot_id: str, requesting_site_id: str, by: Attribution) -> None:
        booking = self.booking(slot_id)
        if requesting_site_id not in (booking.booking_site_id, self.manufacturing_site_id):
            raise Refused(
                f"slot {slot_id} was booked by {booking.booking_site_id}; only that site or"
                f" {self.manufacturing_site_id} may release it"
            )
        if not by.reason.strip():
            raise InvalidInput("releasing a slot needs a reason")
        fields = self._fields(by)
        self.trigger_event(self.SlotReleased, slot_id=slot_id, booked_coi=booking.coi, **fields)

    def _fields(self, by: Attribution) -> dict[str, Any]:
        return {
            "manufacturing_site_id": self.manufacturing_site_id,
            "slot_date": self.slot_date.isoformat(),
            **attributed(by, SITE_LEVEL),
        }

    def booking(self, slot_id: str) -> Booking:
        try:
            return self.bookings[slot_id]
        except KeyError:
            raise NotFound(f"slot {slot_id} is not booked") from None
