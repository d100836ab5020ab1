"""The unpublished records: manufacturing state that belongs to no chain of identity.

Slot calendars (capacity and reservations of a site's day, mixing many COIs), the product DIN
sequence of the facility, and receipt scans that cannot be attributed to any COI. None of it
is published: every event on `v2v.manufacturing.events.v1` is keyed by its COI, and these
aggregates have none. The unpublished records have their own event store: in PostgreSQL the
same database with their own tables (prefixed by the application's `name`), in SQLite their
own file (see `ManufacturingSettings.registers_env`), in memory (POPO) in unit tests.

Product DINs come only from this service's declared block under its FIN (`din_block`, from the
consortium's DIN allocations, `v2v_platform.din_allocation`); without one none is issued.

Optimistic concurrency does the work: two writers of the same aggregate version collide in
the event store (IntegrityError), the loser reloads and tries again (`retrying`, from the
kernel's `UnpublishedRecords`), so a day is never overbooked and no product DIN is issued
twice, even by several processes sharing the store.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from v2v_manufacturing.domain.calendar import Reservation, SlotCalendar
from v2v_manufacturing.domain.din_sequence import ProductDinSequence
from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_manufacturing.domain.receipt import Mismatch, UnattributableScan
from v2v_platform.attribution import Attribution
from v2v_platform.din_allocation import DinBlock
from v2v_platform.errors import Refused
from v2v_platform.ids import Din
from v2v_platform.service_application import MAX_ATTEMPTS, UnpublishedRecords


class ManufacturingUnpublishedRecords(UnpublishedRecords):
    name = "ManufacturingRegisters"
    """Kept from before the rename: eventsourcing names the tables after it
    (`manufacturingregisters_events`), so stores written before keep being read."""

    snapshotting_intervals = {ProductDinSequence: 100}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        *,
        din_block: DinBlock | None = None,
    ) -> None:
        super().__init__(env, max_attempts)
        self.din_block = din_block

    # slot calendars

    def calendar(self, site_id: str, day: date) -> SlotCalendar | None:
        return self.find(SlotCalendar, SlotCalendar.create_id(site_id, day))

    def set_capacity(self, site_id: str, day: date, capacity: int, by: Attribution) -> SlotCalendar:
        def attempt() -> SlotCalendar:
            calendar = self.calendar(site_id, day)
            if calendar is None:
                calendar = SlotCalendar.open(site_id, day, capacity, by)
            else:
                calendar.set_capacity(capacity, by)
            self.save(calendar)
            return calendar

        return self.retrying(attempt)

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

        return self.retrying(attempt)

    def free_slot(self, site_id: str, day: date, slot_id: str, by: Attribution) -> None:
        """Give the slot's capacity back; nothing to do when it is already free."""

        def attempt() -> None:
            calendar = self.calendar(site_id, day)
            if calendar is None or slot_id not in calendar.reservations:
                return
            calendar.free(slot_id, by)
            self.save(calendar)

        self.retrying(attempt)

    # product DINs

    def reserve_product_dins(
        self, fin: str, year: int, count: int, batch_id: str, coi: str, by: Attribution
    ) -> list[Din]:
        """`count` product DINs of this service's block never issued before, or the batch's
        earlier reservation of `count` DINs (so that a retried harvest gets the same DINs)."""
        block = self.din_block
        if block is None:
            raise Refused(f"this manufacturing service has no DIN block under FIN {fin}")

        def attempt() -> list[Din]:
            sequence_id = ProductDinSequence.create_id(fin, year)
            sequence = self.find(ProductDinSequence, sequence_id)
            if sequence is None:
                sequence = ProductDinSequence.start(fin, year, by)
            earlier = sequence.reserved_for(batch_id, count)
            if earlier is not None:
                return earlier
            dins = sequence.reserve(count, batch_id, coi, block, by)
            self.save(sequence)
            return dins

        return self.retrying(attempt)

    def batch_of_product_din(self, din: Din) -> str | None:
        """The batch this service reserved the product DIN for, if it did."""
        sequence = self.find(
            ProductDinSequence, ProductDinSequence.create_id(din.fin, int(din.year))
        )
        return sequence.batch_of(int(din.sequence)) if sequence is not None else None

    # unattributable scans

    def record_unattributable_scan(
        self, scanned_din: str, scanned_coi: str, mismatch: Mismatch, by: Attribution
    ) -> UUID:
        scan = UnattributableScan.record(scanned_din, scanned_coi, mismatch, by)
        self.save(scan)
        scan_id: UUID = scan.id
        return scan_id
