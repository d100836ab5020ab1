"""The registers application: manufacturing state that belongs to no chain of identity.

Slot calendars (capacity and reservations of a site's day, mixing many COIs), the product DIN
sequence of the facility, and receipt scans that cannot be attributed to any COI. None of it
is published: every event on `v2v.manufacturing.events.v1` is keyed by its COI, and these
aggregates have none. The registers have their own event store: in PostgreSQL the same
database with their own tables (prefixed by the application name), in SQLite their own file
(see `ManufacturingSettings.registers_env`), in memory (POPO) in unit tests.

Optimistic concurrency does the work: two writers of the same aggregate version collide in
the event store (IntegrityError), the loser reloads and tries again, so a day is never
overbooked and no product DIN is issued twice, even by several processes sharing the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from v2v_manufacturing.domain.calendar import Reservation, SlotCalendar
from v2v_manufacturing.domain.din_sequence import ProductDinSequence
from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_manufacturing.domain.receipt import Mismatch, UnattributableScan
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Conflict, NotFound
from v2v_platform.ids import Din

MAX_ATTEMPTS = 200
T = TypeVar("T")
AggregateT = TypeVar("AggregateT")


class ManufacturingRegisters(Application[UUID]):
    name = "ManufacturingRegisters"
    snapshotting_intervals = {ProductDinSequence: 100}

    def __init__(self, env: dict[str, str] | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
        super().__init__(env)
        self.max_attempts = max_attempts

    # slot calendars

    def calendar(self, site_id: str, day: date) -> SlotCalendar | None:
        return self._find(SlotCalendar, SlotCalendar.create_id(site_id, day))

    def set_capacity(self, site_id: str, day: date, capacity: int, by: Attribution) -> SlotCalendar:
        def attempt() -> SlotCalendar:
            calendar = self.calendar(site_id, day)
            if calendar is None:
                calendar = SlotCalendar.open(site_id, day, capacity, by)
            else:
                calendar.set_capacity(capacity, by)
            self.save(calendar)
            return calendar

        return self._retrying(attempt)

    def reserve_slot(
        self, site_id: str, day: date, coi: str, booking_site_id: str, by: Attribution
    ) -> Reservation:
        """A new slot of the day for `coi`; SlotsExhausted when every slot is taken."""

        def attempt() -> Reservation:
            calendar = self.calendar(site_id, day)
            if calendar is None:
                raise SlotsExhausted(f"{site_id} has no capacity on {day.isoformat()}")
            reservation = calendar.reserve(coi, booking_site_id, by)
            self.save(calendar)
            return reservation

        return self._retrying(attempt)

    def free_slot(self, site_id: str, day: date, slot_id: str, by: Attribution) -> None:
        """Give the slot's capacity back; nothing to do when it is already free."""

        def attempt() -> None:
            calendar = self.calendar(site_id, day)
            if calendar is None or slot_id not in calendar.reservations:
                return
            calendar.free(slot_id, by)
            self.save(calendar)

        self._retrying(attempt)

    # product DINs

    def reserve_product_dins(
        self, fin: str, year: int, count: int, batch_id: str, coi: str, by: Attribution
    ) -> list[Din]:
        """`count` product DINs never issued before, or the batch's earlier reservation of
        `count` DINs (so that a retried harvest gets the same DINs)."""

        def attempt() -> list[Din]:
            sequence_id = ProductDinSequence.create_id(fin, year)
            sequence = self._find(ProductDinSequence, sequence_id)
            if sequence is None:
                sequence = ProductDinSequence.start(fin, year, by)
            earlier = sequence.reserved_for(batch_id, count)
            if earlier is not None:
                return earlier
            dins = sequence.reserve(count, batch_id, coi, by)
            self.save(sequence)
            return dins

        return self._retrying(attempt)

    # unattributable scans

    def record_unattributable_scan(
        self, scanned_din: str, scanned_coi: str, mismatch: Mismatch, by: Attribution
    ) -> UUID:
        scan = UnattributableScan.record(scanned_din, scanned_coi, mismatch, by)
        self.save(scan)
        scan_id: UUID = scan.id
        return scan_id

    # persistence helpers

    def _find(self, kind: type[AggregateT], aggregate_id: UUID) -> AggregateT | None:
        try:
            aggregate: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, kind):
            raise NotFound(f"{aggregate_id} is not a {kind.__name__}")
        return aggregate

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for _ in range(self.max_attempts):
            try:
                return attempt()
            except IntegrityError:
                continue
        raise Conflict("too many concurrent changes; try again")
