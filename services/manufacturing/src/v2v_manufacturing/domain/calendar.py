"""Slot capacity calendar: one aggregate per manufacturing site and day (INTERNAL).

The calendar mixes the bookings of many COIs, so it belongs to no chain of identity: it lives
in the unpublished records and is never published. What is published is one
`SlotBooking` per slot, under the booked COI (see `slot_booking`).

Concurrent reservations race on the calendar's version (optimistic concurrency): of two
reservations read at the same version only one can be saved, so a day is never overbooked.
Slot ids are deterministic (``SITE/YYYY-MM-DD/N``, N counting every slot ever reserved on
that day) and never reused, even after a release.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.domain_events import LocalCreated, LocalEvent, local
from v2v_platform.errors import InvalidInput, NotFound, Refused

NAMESPACE = UUID("5b0c86a4-1f55-5c0e-a7b2-3d8e4f9a6c21")
MAX_CAPACITY = 1000


@dataclass(frozen=True)
class Reservation:
    """Capacity of the day held for one COI, at the request of one collection site."""

    slot_id: str
    coi: str
    booking_site_id: str


def slot_id_for(site_id: str, day: date, number: int) -> str:
    return f"{site_id}/{day.isoformat()}/{number}"


def parse_slot_id(slot_id: str) -> tuple[str, date]:
    """The manufacturing site and day a slot id names (``SITE/YYYY-MM-DD/N``)."""
    limits.check_id(slot_id, "slot_id")
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


def check_may_release(
    reservation: Reservation, manufacturing_site_id: str, requesting_site_id: str, reason: str
) -> None:
    """Only the booking site or the manufacturing site releases a slot, and always says why.
    To any other site the slot is not booked (NotFound, exactly as for a free slot)."""
    if requesting_site_id not in (reservation.booking_site_id, manufacturing_site_id):
        raise NotFound(f"slot {reservation.slot_id} is not booked")
    if not reason.strip():
        raise InvalidInput("releasing a slot needs a reason")


class SlotCalendar(Aggregate):
    class Opened(LocalCreated):
        manufacturing_site_id: str
        slot_date: str  # ISO 8601 date
        capacity: int

    class CapacitySet(LocalEvent):
        capacity: int
        booked: int

        def apply(self, aggregate: Any) -> None:
            aggregate.capacity = self.capacity

    class SlotReserved(LocalEvent):
        slot_id: str
        booked_coi: str
        booking_site_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.slots_issued += 1
            aggregate.reservations[self.slot_id] = Reservation(
                self.slot_id, self.booked_coi, self.booking_site_id
            )

    class SlotFreed(LocalEvent):
        slot_id: str
        booked_coi: str

        def apply(self, aggregate: Any) -> None:
            del aggregate.reservations[self.slot_id]

    def __init__(self, manufacturing_site_id: str, slot_date: str, capacity: int, **_: Any) -> None:
        self.manufacturing_site_id = manufacturing_site_id
        self.slot_date = date.fromisoformat(slot_date)
        self.capacity = capacity
        self.slots_issued = 0
        self.reservations: dict[str, Reservation] = {}

    @staticmethod
    def create_id(manufacturing_site_id: str, slot_date: date) -> UUID:
        return uuid5(NAMESPACE, f"calendar:{manufacturing_site_id}:{slot_date.isoformat()}")

    @classmethod
    def open(
        cls, manufacturing_site_id: str, slot_date: date, capacity: int, by: Attribution
    ) -> SlotCalendar:
        check_capacity(capacity)
        calendar: SlotCalendar = cls._create(
            cls.Opened,
            id=cls.create_id(manufacturing_site_id, slot_date),
            manufacturing_site_id=manufacturing_site_id,
            slot_date=slot_date.isoformat(),
            capacity=capacity,
            **local(by),
        )
        return calendar

    @property
    def booked(self) -> int:
        return len(self.reservations)

    def set_capacity(self, capacity: int, by: Attribution) -> None:
        check_capacity(capacity)
        if capacity < self.booked:
            raise Refused(
                f"capacity {capacity} is below the {self.booked} slots already booked on"
                f" {self.slot_date.isoformat()}; release bookings first"
            )
        self.trigger_event(self.CapacitySet, capacity=capacity, booked=self.booked, **local(by))

    def reserve(self, coi: str, booking_site_id: str, by: Attribution) -> Reservation:
        if self.booked >= self.capacity:
            raise SlotsExhausted(
                f"{self.manufacturing_site_id} has no free slot on {self.slot_date.isoformat()}"
                f" ({self.booked} of {self.capacity} booked)"
            )
        slot_id = slot_id_for(self.manufacturing_site_id, self.slot_date, self.slots_issued + 1)
        self.trigger_event(
            self.SlotReserved,
            slot_id=slot_id,
            booked_coi=coi,
            booking_site_id=booking_site_id,
            **local(by),
        )
        return self.reservations[slot_id]

    def free(self, slot_id: str, by: Attribution) -> None:
        reservation = self.reservation(slot_id)
        self.trigger_event(self.SlotFreed, slot_id=slot_id, booked_coi=reservation.coi, **local(by))

    def reservation(self, slot_id: str) -> Reservation:
        try:
            return self.reservations[slot_id]
        except KeyError:
            raise NotFound(f"slot {slot_id} is not booked") from None

    def reservations_for(self, coi: str, booking_site_id: str) -> list[Reservation]:
        """This COI's reservations requested by that site, oldest first."""
        return [
            r
            for r in self.reservations.values()
            if r.coi == coi and r.booking_site_id == booking_site_id
        ]
