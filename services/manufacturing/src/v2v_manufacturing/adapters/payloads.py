"""Stored domain events -> v2v.manufacturing.events.v1 payloads, and the outbox translator.

Every event class the aggregates of the (published) manufacturing application store has a
mapper here: hash chains must stay continuous. Each of these events carries its chain's valid
COI, which is the envelope's COI and the Kafka key. The unpublished records (slot calendars,
product DIN sequence, unattributable scans) are never published: no mapper here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from v2v.manufacturing.events.v1 import events_pb2 as pb
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.batch_mismatch import BatchInputsMismatch
from v2v_manufacturing.domain.receipt import ReceiptMismatch, ReceivedUnit
from v2v_manufacturing.domain.slot_booking import SlotBooking
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.proto_values import condition_to_proto, signature_to_proto, timestamp

Mapper = Callable[[Any], Message]


def slot_booked(event: SlotBooking.Booked) -> pb.SlotBooked:
    return pb.SlotBooked(
        coi=event.coi,
        manufacturing_site_id=event.manufacturing_site_id,
        slot_id=event.slot_id,
        slot_date=event.slot_date,
        booking_site_id=event.booking_site_id,
    )


def slot_released(event: SlotBooking.Released) -> pb.SlotReleased:
    return pb.SlotReleased(
        coi=event.coi,
        manufacturing_site_id=event.manufacturing_site_id,
        slot_id=event.slot_id,
        slot_date=event.slot_date,
    )


def unit_received(event: ReceivedUnit.Received) -> pb.UnitReceived:
    return pb.UnitReceived(
        coi=event.coi,
        din=event.din,
        manufacturing_site_id=event.manufacturing_site_id,
        slot_id=event.slot_id,
        condition=condition_to_proto(event.condition),
        window_starts_at=timestamp(event.window_starts_at),
        received_at=timestamp(event.received_at),
    )


def unit_allocated(event: ReceivedUnit.AllocatedToBatch) -> pb.UnitAllocatedToBatch:
    return pb.UnitAllocatedToBatch(coi=event.coi, din=event.din, batch_id=event.batch_id)


def receipt_mismatch(event: ReceiptMismatch.Recorded) -> pb.UnitReceiptMismatchRecorded:
    return pb.UnitReceiptMismatchRecorded(
        coi=event.coi,
        scanned_din=event.scanned_din,
        scanned_coi=event.scanned_coi,
        reason_code=event.reason_code,
        explanation=event.explanation,
        manufacturing_site_id=event.manufacturing_site_id,
    )


def batch_inputs_mismatch(
    event: BatchInputsMismatch.Recorded,
) -> pb.BatchInputsMismatchRecorded:
    return pb.BatchInputsMismatchRecorded(
        coi=event.coi,
        input_dins=event.input_dins,
        input_cois=event.input_cois,
        reason_code=event.reason_code,
        explanation=event.explanation,
        manufacturing_site_id=event.manufacturing_site_id,
        refused_at=timestamp(event.refused_at),
    )


def batch_started(event: Batch.Started) -> pb.BatchStarted:
    return pb.BatchStarted(
        coi=event.coi,
        batch_id=str(event.originator_id),
        manufacturing_site_id=event.manufacturing_site_id,
        input_dins=event.input_dins,
        started_at=timestamp(event.started_at),
        fresh_window_hours=event.fresh_window_hours,
        window_overridden=event.window_overridden,
        override_signature=signature_to_proto(event.override_signature),
        protocol_rules=event.protocol_rules,
    )


def step_recorded(event: Batch.ProcessStepRecorded) -> pb.ProcessStepRecorded:
    return pb.ProcessStepRecorded(
        coi=event.coi,
        batch_id=str(event.originator_id),
        step_kind=event.step_kind,
        device_type=event.device_type,
        device_serial=event.device_serial,
        reagent_lots=event.reagent_lots,
        vector_lot=event.vector_lot,
        parameters=[
            pb.ProcessParameter(name=name, value=value)
            for name, value in sorted(event.parameters.items())
        ],
        performed_at=timestamp(event.performed_at),
    )


def qc_recorded(event: Batch.InProcessQcRecorded) -> pb.InProcessQcRecorded:
    return pb.InProcessQcRecorded(
        coi=event.coi,
        batch_id=str(event.originator_id),
        test=event.test,
        value=event.value,
        unit=event.unit,
        passed=event.passed,
        measured_at=timestamp(event.measured_at),
    )


def products_created(event: Batch.ProductUnitsCreated) -> pb.ProductUnitsCreated:
    return pb.ProductUnitsCreated(
        coi=event.coi,
        batch_id=str(event.originator_id),
        product_dins=event.product_dins,
        input_dins=event.input_dins,
        hold_condition=condition_to_proto(event.hold_condition),
        created_at=timestamp(event.created_at),
    )


def batch_failed(event: Batch.Failed) -> pb.BatchFailed:
    return pb.BatchFailed(
        coi=event.coi,
        batch_id=str(event.originator_id),
        failure_reason=event.failure_reason,
        failed_at=timestamp(event.occurred_at),
    )


PAYLOAD_MAPPERS: dict[type, Mapper] = {
    SlotBooking.Booked: slot_booked,
    SlotBooking.Released: slot_released,
    ReceivedUnit.Received: unit_received,
    ReceivedUnit.AllocatedToBatch: unit_allocated,
    ReceiptMismatch.Recorded: receipt_mismatch,
    BatchInputsMismatch.Recorded: batch_inputs_mismatch,
    Batch.Started: batch_started,
    Batch.ProcessStepRecorded: step_recorded,
    Batch.InProcessQcRecorded: qc_recorded,
    Batch.ProductUnitsCreated: products_created,
    Batch.Failed: batch_failed,
}

TRANSLATOR = AttributedEventTranslator(PAYLOAD_MAPPERS)
