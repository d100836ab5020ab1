"""Plain values the application returns to its adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.calendar import Booking, SlotCalendar
from v2v_manufacturing.domain.values import Condition, QcResult


@dataclass(frozen=True)
class SlotBooking:
    slot_id: str
    manufacturing_site_id: str
    slot_date: str


@dataclass(frozen=True)
class CalendarView:
    manufacturing_site_id: str
    slot_date: str
    capacity: int
    bookings: list[Booking] = field(default_factory=list)

    @property
    def booked(self) -> int:
        return len(self.bookings)

    @classmethod
    def of(cls, calendar: SlotCalendar) -> CalendarView:
        return cls(
            calendar.manufacturing_site_id,
            calendar.slot_date.isoformat(),
            calendar.capacity,
            sorted(calendar.bookings.values(), key=lambda b: b.slot_id),
        )


@dataclass(frozen=True)
class ReceiptView:
    coi: str
    din: str
    slot_id: str
    condition: Condition


@dataclass(frozen=True)
class StepView:
    step_kind: str
    device_type: str
    device_serial: str
    reagent_lots: list[str]
    vector_lot: str
    parameters: dict[str, str]
    performed_at: datetime


@dataclass(frozen=True)
class BatchView:
    batch_id: str
    coi: str
    manufacturing_site_id: str
    status: str
    input_dins: list[str]
    product_dins: list[str]
    hold_condition: Condition | None
    steps: list[StepView]
    qc_results: list[QcResult]
    failure_reason: str
    window_overridden: bool
    started_at: datetime

    @classmethod
    def of(cls, batch: Batch) -> BatchView:
        steps = [
            StepView(
                s.step_kind,
                s.device_type,
                s.device_serial,
                list(s.reagent_lots),
                s.vector_lot,
                dict(s.parameters),
                s.performed_at,
            )
            for s in batch.steps
        ]
        return cls(
            batch.batch_id,
            batch.coi,
            batch.manufacturing_site_id,
            batch.status.value,
            list(batch.input_dins),
            list(batch.product_dins),
            batch.hold_condition,
            steps,
            list(batch.qc_results),
            batch.failure_reason,
            batch.window_overridden,
            batch.started_at,
        )
