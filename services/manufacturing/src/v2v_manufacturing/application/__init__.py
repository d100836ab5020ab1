"""The manufacturing application: commands and queries over plain values.

Methods take plain values plus the acting `Attribution` (or, for reads, the caller's `Scope`),
raise `DomainError`s, and return the plain values of `views`. Who may act or read on which
COI is decided here, from verified facts (intake's events, this service's own records),
never from a request field; the adapters' `ACCESS` table declares it per method. Refusals
that must be recorded (receipt mismatches, I2) are saved before the refusal is raised. Every
change is saved under optimistic concurrency and retried from a fresh read when another
change won the race.

This application's notification log is the outbox: every aggregate here belongs to ONE chain
of identity and every event it stores carries that chain's valid COI (its Kafka key). State
that belongs to no chain (slot calendars, the product DIN sequence, unattributable scans)
lives in `ManufacturingUnpublishedRecords`, which is never published.

Each group of use cases is a class in a sibling module, given this application:
`slots` (calendars and bookings), `receipt` (units received, units expected), `batches`,
`labels` (product units' ISBT 128 labels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from v2v_manufacturing.application.batches import Batches
from v2v_manufacturing.application.labels import ProductLabels
from v2v_manufacturing.application.receipt import UnitReceipt
from v2v_manufacturing.application.slots import SlotBookings
from v2v_manufacturing.domain.values import ProcessStep, QcResult
from v2v_manufacturing.ports import ManufacturingFacts, NoManufacturingFacts
from v2v_manufacturing.unpublished_records import ManufacturingUnpublishedRecords
from v2v_manufacturing.views import (
    BatchView,
    BookingView,
    CalendarView,
    ExpectedUnitView,
    ReceiptView,
)
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.labels import NO_PRODUCT_CODES, Label, ProductCodes
from v2v_platform.protocol_rules import DEFAULT_RULES, ProtocolRules
from v2v_platform.scope import Scope
from v2v_platform.service_application import CLOCK_SKEW, MAX_ATTEMPTS, ServiceApplication, utc_now


class ManufacturingApplication(ServiceApplication[ManufacturingUnpublishedRecords]):
    context = "manufacturing"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        unpublished: ManufacturingUnpublishedRecords | None = None,
        facts: ManufacturingFacts | None = None,
        clock: Callable[[], datetime] = utc_now,
        fin: str = "",
        rules: ProtocolRules = DEFAULT_RULES,
        product_codes: ProductCodes = NO_PRODUCT_CODES,
        max_attempts: int = MAX_ATTEMPTS,
        clock_skew: timedelta = CLOCK_SKEW,
    ) -> None:
        super().__init__(
            env,
            site_id=site_id,
            unpublished=unpublished,
            clock=clock,
            max_attempts=max_attempts,
            clock_skew=clock_skew,
        )
        self.facts: ManufacturingFacts = facts or NoManufacturingFacts()
        self.fin = fin
        self.rules = rules
        self.slots = SlotBookings(self)
        self.receipt = UnitReceipt(self)
        self.batches = Batches(self)
        self.labels = ProductLabels(self, product_codes)

    # slot calendar (capacity in the unpublished records), bookings (on the COI's chain)

    def set_slot_capacity(
        self, manufacturing_site_id: str, slot_date: str, capacity: int, by: Attribution
    ) -> CalendarView:
        return self.slots.set_capacity(manufacturing_site_id, slot_date, capacity, by)

    def book_slot(
        self, coi: str, manufacturing_site_id: str, slot_date: str, by: Attribution
    ) -> BookingView:
        return self.slots.book(coi, manufacturing_site_id, slot_date, by)

    def release_slot(self, slot_id: str, by: Attribution) -> None:
        self.slots.release(slot_id, by)

    def slot_calendar(
        self, manufacturing_site_id: str, slot_date: str, scope: Scope
    ) -> CalendarView:
        return self.slots.calendar(manufacturing_site_id, slot_date, scope)

    # receipt

    def receive_unit(
        self,
        scanned_din: str,
        scanned_coi: str,
        by: Attribution,
        received_at: datetime | None = None,
    ) -> ReceiptView:
        return self.receipt.receive(scanned_din, scanned_coi, by, received_at)

    def expected_units(self, coi: str, scope: Scope) -> list[ExpectedUnitView]:
        return self.receipt.expected_units(coi, scope)

    # batches

    def start_batch(
        self,
        input_dins: Sequence[str],
        override: WindowOverride | None,
        by: Attribution,
        started_at: datetime | None = None,
    ) -> BatchView:
        return self.batches.start(input_dins, override, by, started_at)

    def record_process_step(
        self,
        batch_id: str,
        step: ProcessStep,
        by: Attribution,
        performed_at: datetime | None = None,
    ) -> None:
        self.batches.record_step(batch_id, step, by, performed_at)

    def record_in_process_qc(
        self,
        batch_id: str,
        result: QcResult,
        by: Attribution,
        measured_at: datetime | None = None,
    ) -> None:
        self.batches.record_qc(batch_id, result, by, measured_at)

    def fail_batch(self, batch_id: str, by: Attribution, failed_at: datetime | None = None) -> None:
        self.batches.fail(batch_id, by, failed_at)

    def harvest(
        self,
        batch_id: str,
        product_unit_count: int,
        hold: Condition,
        by: Attribution,
        harvested_at: datetime | None = None,
    ) -> list[str]:
        return self.batches.harvest(batch_id, product_unit_count, hold, by, harvested_at)

    def batch(self, batch_id: str, scope: Scope) -> BatchView:
        return self.batches.read(batch_id, scope)

    def product_label(
        self,
        din: str,
        scope: Scope,
        product_code: str | None = None,
        expires_at: datetime | None = None,
    ) -> Label:
        return self.labels.label(din, scope, product_code, expires_at)
