"""Plain values the application returns to its adapters."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.values import QcResult
from v2v_platform.conditions import Condition


@dataclass(frozen=True)
class BookingView:
    slot_id: str
    manufacturing_site_id: str
    slot_date: str


@dataclass(frozen=True)
class BookedSlotView:
    """A slot whose capacity is held for a COI.

    `recorded` is False when the booking is not (or no longer) on the COI's published chain:
    a booking interrupted between its two saves, or a release interrupted between its two
    saves. Retrying the booking, or releasing the slot, resolves it.
    """

    slot_id: str
    coi: str
    booking_site_id: str
    recorded: bool = True


@dataclass(frozen=True)
class CalendarView:
    """A site's day: its capacity, how many slots are booked (by every site), and the bookings
    shown to the caller (`booked_by`: only its own)."""

    manufacturing_site_id: str
    slot_date: str
    capacity: int
    booked: int = 0
    bookings: list[BookedSlotView] = field(default_factory=list)

    def booked_by(self, site_id: str) -> CalendarView:
        """The same day, its bookings narrowed to those `site_id` booked (the count stays)."""
        return replace(self, bookings=[b for b in self.bookings if b.booking_site_id == site_id])

    @property
    def unrecorded(self) -> list[BookedSlotView]:
        return [b for b in self.bookings if not b.recorded]


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
    qc_measured_at: list[datetime] = field(default_factory=list)
    """When each of `qc_results` was measured (clinical time), in the same order."""

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
            list(batch.qc_measured_at),
        )


@dataclass(frozen=True)
class ExpectedUnitView:
    """A unit on its way here (from intake's events) and the booked slot it can be received on."""

    din: str
    coi: str
    condition: Condition
    window_starts_at: datetime
    slot_id: str
