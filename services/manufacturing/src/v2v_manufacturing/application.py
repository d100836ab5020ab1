"""The manufacturing application: commands and queries over plain values.

Methods take plain values plus the acting `Attribution`, raise `DomainError`s, and return
the plain values of `views`. Refusals that must be recorded (receipt mismatches, I2) are
saved before the refusal is raised. Every change is saved under optimistic concurrency and
retried from a fresh read when another change won the race.

This application's notification log is the outbox: every aggregate here belongs to ONE chain
of identity and every event it stores carries that chain's valid COI (its Kafka key). State
that belongs to no chain (slot calendars, the product DIN sequence, unattributable scans)
lives in the internal `ManufacturingRegisters` application, which is never published.

Booking a slot takes two saves: the capacity is reserved in the calendar (registers), then the
`SlotBooking` is recorded on the COI's chain (here). A retry of a booking interrupted between
the two (same COI, same requesting site, same day) completes the reservation it left instead
of reserving another: the slot id is the calendar's, and recording it twice collides on the
`SlotBooking`'s id derived from it. Releasing records the release on the chain first, then
frees the capacity; a retry finishes it. Until then the calendar view shows the slot as not
recorded (`BookedSlotView.recorded`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from v2v_manufacturing.domain.batch import Batch, BatchInput, check_product_count
from v2v_manufacturing.domain.calendar import (
    Reservation,
    SlotCalendar,
    check_may_release,
    parse_slot_id,
)
from v2v_manufacturing.domain.receipt import (
    Mismatch,
    ReceiptMismatch,
    ReceivedUnit,
    chain_at_risk,
    malformed,
    match_receipt,
)
from v2v_manufacturing.domain.slot_booking import SlotBooking, slot_booking_id
from v2v_manufacturing.domain.values import (
    ExpectedUnit,
    ProcessStep,
    QcResult,
    parse_slot_date,
)
from v2v_manufacturing.registers import ManufacturingRegisters
from v2v_manufacturing.views import (
    BatchView,
    BookedSlotView,
    BookingView,
    CalendarView,
    ExpectedUnitView,
    ReceiptView,
)
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.conditions import Condition
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.ids import Coi, Din, InvalidIdentifier
from v2v_platform.traced_application import TracedApplication

log = logging.getLogger("v2v.manufacturing")

T = TypeVar("T")
AggregateT = TypeVar("AggregateT")
DEFAULT_FRESH_WINDOW = timedelta(hours=48)


class IntakeFacts(Protocol):
    """What manufacturing knows from intake's events (its own projection of them)."""

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None: ...
    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]: ...
    def units_for(self, coi: str) -> list[ExpectedUnit]: ...


class NoIntakeFacts:
    """Knows nothing: every receipt is refused (for processes that only relay)."""

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None:
        return None

    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]:
        return []

    def units_for(self, coi: str) -> list[ExpectedUnit]:
        return []


class NotWired(RuntimeError):
    """The application was built without its registers (e.g. by the relay): it cannot command."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_din(text: str) -> Din:
    try:
        return Din.parse(text.strip())
    except InvalidIdentifier as error:
        raise InvalidInput(str(error)) from None


def parse_coi(text: str) -> Coi:
    try:
        return Coi.parse(text.strip())
    except InvalidIdentifier as error:
        raise InvalidInput(str(error)) from None


class ManufacturingApplication(TracedApplication):
    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        registers: ManufacturingRegisters | None = None,
        site_id: str = "",
        intake_facts: IntakeFacts | None = None,
        clock: Callable[[], datetime] = utc_now,
        fin: str = "",
        fresh_window: timedelta = DEFAULT_FRESH_WINDOW,
        max_attempts: int = 200,
    ) -> None:
        super().__init__(env)
        self._registers = registers
        self.site_id = site_id
        self.intake_facts: IntakeFacts = intake_facts or NoIntakeFacts()
        self.clock = clock
        self.fin = fin
        self.fresh_window = fresh_window
        self.max_attempts = max_attempts

    @property
    def registers(self) -> ManufacturingRegisters:
        if self._registers is None:
            raise NotWired("ManufacturingApplication built without its registers application")
        return self._registers

    # slot calendar (capacity in the registers) and slot bookings (on the COI's chain)

    def set_slot_capacity(
        self, manufacturing_site_id: str, slot_date: str, capacity: int, by: Attribution
    ) -> CalendarView:
        self._check_local(by)
        self._check_served(manufacturing_site_id)
        day = parse_slot_date(slot_date)
        return self._calendar_view(self.registers.set_capacity(self.site_id, day, capacity, by))

    def book_slot(
        self, coi: str, manufacturing_site_id: str, slot_date: str, by: Attribution
    ) -> BookingView:
        booked_coi = parse_coi(coi).value
        day = parse_slot_date(slot_date)
        self._check_served(manufacturing_site_id)
        reservation = self._unrecorded_reservation(manufacturing_site_id, day, booked_coi, by)
        if reservation is None:
            reservation = self.registers.reserve_slot(
                manufacturing_site_id, day, booked_coi, by.site_id, by
            )
        else:
            log.warning(
                "slot %s: completing the booking of COI %s for %s, interrupted after its"
                " capacity was reserved",
                reservation.slot_id,
                booked_coi,
                by.site_id,
            )
        self._record_booking(reservation, manufacturing_site_id, day, by)
        if not self._still_reserved(reservation, manufacturing_site_id, day):
            self._release_on_chain(
                reservation.slot_id, by.because("the slot was released while being booked")
            )
            raise Conflict(f"slot {reservation.slot_id} was released while it was being booked")
        return BookingView(reservation.slot_id, manufacturing_site_id, day.isoformat())

    def release_slot(self, slot_id: str, by: Attribution) -> None:
        site_id, day = parse_slot_id(slot_id)
        self._check_served(site_id)
        calendar = self.registers.calendar(site_id, day)
        if calendar is None:
            raise NotFound(f"slot {slot_id} is not booked")
        check_may_release(calendar.reservation(slot_id), site_id, by.site_id, by.reason)
        self._release_on_chain(slot_id, by)  # first: the capacity is never freed early
        self.registers.free_slot(site_id, day, slot_id, by)
        # a booking of this slot recorded meanwhile (its reservation was in flight) goes too;
        # `book_slot` checks the other way round, so one of the two always sees the other
        self._release_on_chain(slot_id, by)

    def slot_calendar(self, manufacturing_site_id: str, slot_date: str) -> CalendarView:
        self._check_served(manufacturing_site_id)
        day = parse_slot_date(slot_date)
        calendar = self.registers.calendar(manufacturing_site_id, day)
        if calendar is None:
            return CalendarView(manufacturing_site_id, day.isoformat(), 0)
        return self._calendar_view(calendar)

    def _calendar_view(self, calendar: SlotCalendar) -> CalendarView:
        return CalendarView(
            calendar.manufacturing_site_id,
            calendar.slot_date.isoformat(),
            calendar.capacity,
            [
                BookedSlotView(r.slot_id, r.coi, r.booking_site_id, self._is_recorded(r))
                for r in calendar.reservations.values()
            ],
        )

    def _is_recorded(self, reservation: Reservation) -> bool:
        booking = self._find(SlotBooking, slot_booking_id(reservation.slot_id))
        return booking is not None and booking.is_booked

    def _unrecorded_reservation(
        self, site_id: str, day: date, coi: str, by: Attribution
    ) -> Reservation | None:
        """A reservation of this COI by this site whose booking was never recorded."""
        calendar = self.registers.calendar(site_id, day)
        if calendar is None:
            return None
        for reservation in calendar.reservations_for(coi, by.site_id):
            if self._find(SlotBooking, slot_booking_id(reservation.slot_id)) is None:
                return reservation
        return None

    def _still_reserved(self, reservation: Reservation, site_id: str, day: date) -> bool:
        calendar = self.registers.calendar(site_id, day)
        return calendar is not None and reservation.slot_id in calendar.reservations

    def _release_on_chain(self, slot_id: str, by: Attribution) -> None:
        """Record the release of the slot's booking on its COI's chain, if it is booked."""

        def attempt() -> None:
            booking = self._find(SlotBooking, slot_booking_id(slot_id))
            if booking is not None and booking.is_booked:
                booking.release(self._authored(by))
                self.save(booking)

        self._retrying(attempt)

    def _record_booking(
        self, reservation: Reservation, site_id: str, day: date, by: Attribution
    ) -> None:
        booking = SlotBooking.book(reservation, site_id, day.isoformat(), self._authored(by))
        try:
            self.save(booking)
        except IntegrityError:
            # recorded meanwhile by a concurrent retry of the same booking: the same fact
            recorded = self._find(SlotBooking, booking.id)
            if recorded is None or not recorded.is_booked or recorded.coi != reservation.coi:
                raise Conflict(f"slot {reservation.slot_id} changed meanwhile; try again") from None

    # receipt

    def receive_unit(self, scanned_din: str, scanned_coi: str, by: Attribution) -> ReceiptView:
        self._check_local(by)
        din, din_problem = _din_or_problem(scanned_din)
        coi, coi_problem = _coi_or_problem(scanned_coi)
        expected = self.intake_facts.packaged_unit(din.data) if din is not None else None
        chain = chain_at_risk(expected, coi.value if coi is not None else None)
        if din is None or coi is None:
            mismatch = malformed(din_problem, coi_problem)
            self._refuse_receipt(scanned_din, scanned_coi, mismatch, chain, by)
        if self._find(ReceivedUnit, ReceivedUnit.create_id(din.data)) is not None:
            raise Refused(f"unit {din} was already received")
        slot_id = self._booked_slot(expected.coi, by.site_id) if expected else None
        found = match_receipt(expected, coi.value, by.site_id, slot_id)
        if found is not None or expected is None or slot_id is None:
            assert found is not None  # match_receipt returns one whenever a fact is missing
            self._refuse_receipt(scanned_din, scanned_coi, found, chain, by)
        unit = ReceivedUnit.receive(expected, slot_id, self.clock(), by)
        try:
            self.save(unit)
        except IntegrityError:
            raise Refused(f"unit {din} was already received") from None
        return ReceiptView(expected.coi, expected.din, slot_id, expected.condition)

    def expected_units(self, coi: str) -> list[ExpectedUnitView]:
        """Units intake packaged for this site for `coi`, as known from intake's events."""
        slot_id = self._booked_slot(coi, self.site_id)
        return [
            ExpectedUnitView(u.din, u.coi, u.condition, u.window_starts_at, slot_id or "")
            for u in self.intake_facts.units_for(coi)
            if u.manufacturing_site_id == self.site_id
        ]

    def _booked_slot(self, coi: str, site_id: str) -> str | None:
        """A slot intake booked for `coi` here that is booked on the COI's chain."""
        for slot_id in self.intake_facts.booked_slot_ids(coi, site_id):
            booking = self._find(SlotBooking, slot_booking_id(slot_id))
            if (
                booking is not None
                and booking.is_booked
                and booking.coi == coi
                and booking.manufacturing_site_id == site_id
            ):
                return slot_id
        return None

    def _refuse_receipt(
        self,
        scanned_din: str,
        scanned_coi: str,
        mismatch: Mismatch,
        chain: str | None,
        by: Attribution,
    ) -> NoReturn:
        refusal = f"receipt refused ({mismatch.reason_code}): {mismatch.explanation}"
        if chain is None:
            scan_id = self.registers.record_unattributable_scan(
                scanned_din, scanned_coi, mismatch, by
            )
            log.warning(
                "unattributable receipt scan %s at %s by %s (DIN %r, COI %r): %s",
                scan_id,
                by.site_id,
                by.user_id,
                scanned_din,
                scanned_coi,
                refusal,
            )
            raise Refused(
                f"{refusal}; the scan names neither a known unit nor a valid COI, so it is"
                f" recorded at this site only (scan {scan_id})"
            )
        self.save(ReceiptMismatch.record(scanned_din, scanned_coi, mismatch, chain, by))
        raise Refused(refusal)

    # batches

    def start_batch(
        self, input_dins: Sequence[str], override: WindowOverride | None, by: Attribution
    ) -> BatchView:
        self._check_local(by)
        dins = [parse_din(text) for text in input_dins]
        if len({din.data for din in dins}) != len(dins):
            raise InvalidInput("an input unit is listed twice")

        def attempt() -> BatchView:
            units = [self._received(din) for din in dins]
            inputs = [BatchInput(u.din, u.coi, u.condition, u.window_starts_at) for u in units]
            batch = Batch.start(inputs, self.clock(), self.fresh_window, override, by)
            for unit in units:
                unit.allocate(batch.batch_id, by)
            self.save(batch, *units)
            return BatchView.of(batch)

        return self._retrying(attempt)

    def record_process_step(self, batch_id: str, step: ProcessStep, by: Attribution) -> None:
        self._change_batch(batch_id, by, lambda b: b.record_step(step, self.clock(), by))

    def record_in_process_qc(self, batch_id: str, result: QcResult, by: Attribution) -> None:
        self._change_batch(batch_id, by, lambda b: b.record_qc(result, self.clock(), by))

    def fail_batch(self, batch_id: str, by: Attribution) -> None:
        self._change_batch(batch_id, by, lambda b: b.fail(by))

    def harvest(
        self, batch_id: str, product_unit_count: int, hold: Condition, by: Attribution
    ) -> list[str]:
        self._check_local(by)
        if not self.fin:
            raise Refused("this service has no facility identification number (V2V_FIN)")
        check_product_count(product_unit_count)

        def attempt() -> list[str]:
            batch = self._batch(batch_id)
            batch.check_running(by)
            now = self.clock()
            # first the numbers (registers), then the batch; a retry gets the same numbers
            dins = self.registers.reserve_product_dins(
                self.fin, now.year % 100, product_unit_count, batch.batch_id, batch.coi, by
            )
            batch.harvest(dins, hold, now, by)
            self.save(batch)
            return [str(din) for din in dins]

        return self._retrying(attempt)

    def batch(self, batch_id: str, reader: CallerIdentity) -> BatchView:
        batch = self._batch(batch_id)
        if Role.AUDITOR not in reader.roles and reader.site_id != batch.manufacturing_site_id:
            raise Forbidden(f"batch {batch_id} belongs to {batch.manufacturing_site_id}")
        return BatchView.of(batch)

    def _change_batch(
        self, batch_id: str, by: Attribution, change: Callable[[Batch], None]
    ) -> None:
        self._check_local(by)

        def attempt() -> None:
            batch = self._batch(batch_id)
            change(batch)
            self.save(batch)

        self._retrying(attempt)

    def _batch(self, batch_id: str) -> Batch:
        try:
            aggregate_id = UUID(batch_id)
        except ValueError:
            raise InvalidInput(f"batch id {batch_id!r} is not a UUID") from None
        return self._get(Batch, aggregate_id, "batch")

    def _received(self, din: Din) -> ReceivedUnit:
        unit = self._find(ReceivedUnit, ReceivedUnit.create_id(din.data))
        if unit is None:
            raise Refused(f"unit {din} has not been received here")
        return unit

    # sites

    def _check_local(self, by: Attribution) -> None:
        """Manufacturing commands come from this manufacturing site only."""
        if by.site_id != self.site_id:
            raise Forbidden(
                f"this service records manufacturing at {self.site_id}, not {by.site_id}"
            )

    def _check_served(self, manufacturing_site_id: str) -> None:
        if manufacturing_site_id != self.site_id:
            raise NotFound(
                f"this service keeps the slot calendar of {self.site_id},"
                f" not {manufacturing_site_id}"
            )

    def _authored(self, by: Attribution) -> Attribution:
        """`by`, as recorded (and signed) by this site: the envelope's site is the author."""
        return replace(by, site_id=self.site_id)

    # persistence helpers

    def _find(self, kind: type[AggregateT], aggregate_id: UUID) -> AggregateT | None:
        try:
            aggregate: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, kind):
            raise NotFound(f"{aggregate_id} is not a {kind.__name__}")
        return aggregate

    def _get(self, kind: type[AggregateT], aggregate_id: UUID, what: str) -> AggregateT:
        aggregate = self._find(kind, aggregate_id)
        if aggregate is None:
            raise NotFound(f"no such {what}: {aggregate_id}")
        return aggregate

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for _ in range(self.max_attempts):
            try:
                return attempt()
            except IntegrityError:
                continue
        raise Conflict("too many concurrent changes; try again")


def _din_or_problem(text: str) -> tuple[Din | None, str]:
    try:
        return Din.parse(text.strip()), ""
    except InvalidIdentifier as error:
        return None, str(error)


def _coi_or_problem(text: str) -> tuple[Coi | None, str]:
    try:
        return Coi.parse(text.strip()), ""
    except InvalidIdentifier as error:
        return None, str(error)
