"""The manufacturing application: commands and queries over plain values.

Methods take plain values plus the acting `Attribution`, raise `DomainError`s, and return
the plain values of `views`. Refusals that must be recorded (receipt mismatches, I2) are
saved before the refusal is raised. Every change is saved under optimistic concurrency and
retried from a fresh read when another change won the race.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from v2v_manufacturing.domain.batch import Batch, BatchInput, check_product_count
from v2v_manufacturing.domain.calendar import SlotCalendar, parse_slot_id
from v2v_manufacturing.domain.din_sequence import ProductDinSequence
from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_manufacturing.domain.receipt import (
    MALFORMED,
    Mismatch,
    ReceiptMismatch,
    ReceivedUnit,
    match_receipt,
)
from v2v_manufacturing.domain.values import (
    Condition,
    ExpectedUnit,
    ProcessStep,
    QcResult,
    WindowOverride,
    parse_slot_date,
)
from v2v_manufacturing.views import BatchView, CalendarView, ReceiptView, SlotBooking
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.ids import Coi, Din, InvalidIdentifier

T = TypeVar("T")
AggregateT = TypeVar("AggregateT")
DEFAULT_FRESH_WINDOW = timedelta(hours=48)


class IntakeFacts(Protocol):
    """What manufacturing knows from intake's events (its own projection of them)."""

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None: ...
    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]: ...


class NoIntakeFacts:
    """Knows nothing: every receipt is refused (for processes that only relay)."""

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None:
        return None

    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]:
        return []


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


class ManufacturingApplication(Application[UUID]):
    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        intake_facts: IntakeFacts | None = None,
        clock: Callable[[], datetime] = utc_now,
        fin: str = "",
        fresh_window: timedelta = DEFAULT_FRESH_WINDOW,
        max_attempts: int = 200,
    ) -> None:
        super().__init__(env)
        self.site_id = site_id
        self.intake_facts: IntakeFacts = intake_facts or NoIntakeFacts()
        self.clock = clock
        self.fin = fin
        self.fresh_window = fresh_window
        self.max_attempts = max_attempts

    # slot calendar

    def set_slot_capacity(
        self, manufacturing_site_id: str, slot_date: str, capacity: int, by: Attribution
    ) -> CalendarView:
        self._check_local(by)
        self._check_served(manufacturing_site_id)
        day = parse_slot_date(slot_date)

        def attempt() -> CalendarView:
            calendar = self._find(SlotCalendar, SlotCalendar.create_id(by.site_id, day))
            if calendar is None:
                calendar = SlotCalendar.open(by.site_id, day, capacity, by)
            else:
                calendar.set_capacity(capacity, by)
            self.save(calendar)
            return CalendarView.of(calendar)

        return self._retrying(attempt)

    def book_slot(
        self, coi: str, manufacturing_site_id: str, slot_date: str, by: Attribution
    ) -> SlotBooking:
        booked_coi = parse_coi(coi).value
        day = parse_slot_date(slot_date)
        self._check_served(manufacturing_site_id)

        def attempt() -> SlotBooking:
            calendar = self._find(SlotCalendar, SlotCalendar.create_id(manufacturing_site_id, day))
            if calendar is None:
                raise SlotsExhausted(f"{manufacturing_site_id} has no capacity on {slot_date}")
            slot_id = calendar.book(booked_coi, by.site_id, self._authored(by))
            self.save(calendar)
            return SlotBooking(slot_id, manufacturing_site_id, day.isoformat())

        return self._retrying(attempt)

    def release_slot(self, slot_id: str, by: Attribution) -> None:
        site_id, day = parse_slot_id(slot_id)
        self._check_served(site_id)

        def attempt() -> None:
            calendar = self._get(SlotCalendar, SlotCalendar.create_id(site_id, day), "calendar")
            calendar.release(slot_id, by.site_id, self._authored(by))
            self.save(calendar)

        self._retrying(attempt)

    def slot_calendar(self, manufacturing_site_id: str, slot_date: str) -> CalendarView:
        self._check_served(manufacturing_site_id)
        day = parse_slot_date(slot_date)
        calendar = self._find(SlotCalendar, SlotCalendar.create_id(manufacturing_site_id, day))
        if calendar is None:
            return CalendarView(manufacturing_site_id, day.isoformat(), 0)
        return CalendarView.of(calendar)

    # receipt

    def receive_unit(self, scanned_din: str, scanned_coi: str, by: Attribution) -> ReceiptView:
        self._check_local(by)
        try:
            din = Din.parse(scanned_din.strip())
            Coi.parse(scanned_coi.strip())
        except InvalidIdentifier as error:
            self._refuse_receipt(scanned_din, scanned_coi, Mismatch(MALFORMED, str(error)), by)
        if self._find(ReceivedUnit, ReceivedUnit.create_id(din.data)) is not None:
            raise Refused(f"unit {din} was already received")
        expected = self.intake_facts.packaged_unit(din.data)
        slot_id = self._booked_slot(expected.coi, by.site_id) if expected else None
        mismatch = match_receipt(expected, scanned_coi.strip(), by.site_id, slot_id)
        if mismatch is not None or expected is None or slot_id is None:
            self._refuse_receipt(scanned_din, scanned_coi, mismatch, by)
        unit = ReceivedUnit.receive(expected, slot_id, self.clock(), by)
        try:
            self.save(unit)
        except IntegrityError:
            raise Refused(f"unit {din} was already received") from None
        return ReceiptView(expected.coi, expected.din, slot_id, expected.condition)

    def _booked_slot(self, coi: str, site_id: str) -> str | None:
        for slot_id in self.intake_facts.booked_slot_ids(coi, site_id):
            try:
                calendar_id = SlotCalendar.create_id(*parse_slot_id(slot_id))
            except InvalidInput:
                continue  # not a slot id this service issued
            calendar = self._find(SlotCalendar, calendar_id)
            booking = calendar.bookings.get(slot_id) if calendar else None
            if booking is not None and booking.coi == coi:
                return slot_id
        return None

    def _refuse_receipt(
        self, scanned_din: str, scanned_coi: str, mismatch: Mismatch | None, by: Attribution
    ) -> NoReturn:
        assert mismatch is not None  # match_receipt returns one whenever a fact is missing
        if not mismatch.coi:
            mismatch = replace(mismatch, coi=_well_formed_coi(scanned_coi))
        self.save(ReceiptMismatch.record(scanned_din, scanned_coi, mismatch, by))
        raise Refused(f"receipt refused ({mismatch.reason_code}): {mismatch.explanation}")

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
            year = now.year % 100
            sequence = self._find(ProductDinSequence, ProductDinSequence.create_id(self.fin, year))
            if sequence is None:
                sequence, dins = ProductDinSequence.start(
                    self.fin, year, product_unit_count, batch.batch_id, batch.coi, by
                )
            else:
                dins = sequence.reserve(product_unit_count, batch.batch_id, batch.coi, by)
            batch.harvest(dins, hold, now, by)
            self.save(batch, sequence)
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


def _well_formed_coi(text: str) -> str:
    try:
        return Coi.parse(text.strip()).value
    except InvalidIdentifier:
        return ""
