"""Stored domain events -> v2v.logistics.events.v1 payloads, and the outbox translator.

Every event class the `Shipment` aggregate stores has a mapper here: hash chains must stay
continuous. Each carries the shipment's ONE valid COI, the envelope's COI and Kafka key. The
unpublished records (which shipments each unit was listed on) are never published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from v2v.logistics.events.v1 import events_pb2 as pb
from v2v_logistics.domain.shipment import Shipment
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.proto_values import condition_to_proto, signature_to_proto, timestamp

Mapper = Callable[[Any], Message]


def _ids(event: Any) -> dict[str, str]:
    return {"coi": event.coi, "shipment_id": str(event.originator_id)}


def shipment_created(event: Shipment.Created) -> pb.ShipmentCreated:
    return pb.ShipmentCreated(
        **_ids(event),
        manifest_dins=event.manifest,
        condition=condition_to_proto(event.condition),
        origin_site_id=event.origin_site_id,
        destination_site_id=event.destination_site_id,
        shipper_id=event.shipper_id,
        data_logger_id=event.data_logger_id,
        custodian=event.custodian,
        assigned_courier_id=event.assigned_courier_id,
        window_ends_at=timestamp(event.window_ends_at) if event.window_ends_at else None,
        window_rule=event.window_rule,
        created_at=timestamp(event.created_at),
        protocol_rules=event.protocol_rules,
        origin_department=event.origin_department,
        destination_department=event.destination_department,
    )


def courier_assigned(event: Shipment.CourierAssigned) -> pb.CourierAssigned:
    return pb.CourierAssigned(**_ids(event), courier_id=event.courier_id)


def unit_scanned(event: Shipment.UnitScanned) -> pb.UnitScanned:
    return pb.UnitScanned(
        **_ids(event),
        din=event.din,
        from_party=event.from_party,
        receiving_party=event.receiving_party,
        scanned_at=timestamp(event.scanned_at),
        late=event.late,
        idempotency_key=event.idempotency_key,
    )


def handoff_offered(event: Shipment.HandoffOffered) -> pb.HandoffOffered:
    return pb.HandoffOffered(
        **_ids(event),
        from_party=event.from_party,
        to_party=event.to_party,
        offered_at=timestamp(event.offered_at),
        idempotency_key=event.idempotency_key,
    )


def custody_handed_over(event: Shipment.CustodyHandedOver) -> pb.CustodyHandedOver:
    return pb.CustodyHandedOver(
        **_ids(event),
        from_party=event.from_party,
        to_party=event.to_party,
        status=event.status,
        scanned_at=timestamp(event.scanned_at),
        late=event.late,
        idempotency_key=event.idempotency_key,
    )


def scan_mismatch(event: Shipment.ScanMismatchRecorded) -> pb.ScanMismatchRecorded:
    return pb.ScanMismatchRecorded(
        **_ids(event),
        reason_code=event.reason_code,
        explanation=event.explanation,
        scanned_label=event.scanned_label,
        from_party=event.from_party,
        receiving_party=event.receiving_party,
        scanned_at=timestamp(event.scanned_at),
        idempotency_key=event.idempotency_key,
        missing_dins=event.missing_dins,
    )


def window_breached(event: Shipment.StabilityWindowBreached) -> pb.StabilityWindowBreached:
    return pb.StabilityWindowBreached(
        **_ids(event),
        window_ends_at=timestamp(event.window_ends_at),
        detected_at=timestamp(event.detected_at),
        checkpoint=event.checkpoint,
    )


def readings_recorded(
    event: Shipment.TemperatureReadingsRecorded,
) -> pb.TemperatureReadingsRecorded:
    return pb.TemperatureReadingsRecorded(
        **_ids(event),
        device_id=event.device_id,
        readings=[
            pb.TemperatureReading(
                measured_at=timestamp(r["measured_at"]), temperature_c=r["temperature_c"]
            )
            for r in event.readings
        ],
    )


def excursion_recorded(
    event: Shipment.TemperatureExcursionRecorded,
) -> pb.TemperatureExcursionRecorded:
    return pb.TemperatureExcursionRecorded(
        **_ids(event),
        device_id=event.device_id,
        started_at=timestamp(event.started_at),
        ended_at=timestamp(event.ended_at),
        duration_seconds=int((event.ended_at - event.started_at).total_seconds()),
        min_c=event.min_c,
        max_c=event.max_c,
        condition=condition_to_proto(event.condition),
    )


def delivered(event: Shipment.Delivered) -> pb.ShipmentDelivered:
    return pb.ShipmentDelivered(
        **_ids(event),
        from_party=event.from_party,
        destination_site_id=event.destination_site_id,
        received_at=timestamp(event.received_at),
        window_overridden=event.window_overridden,
        override_signature=signature_to_proto(event.override_signature),
        destination_department=event.destination_department,
        manifest_dins=list(event.manifest_dins),
    )


def receipt_inspected(event: Shipment.ReceiptInspected) -> pb.ReceiptInspected:
    return pb.ReceiptInspected(
        **_ids(event),
        intact=event.intact,
        temperature_log_reviewed=event.temperature_log_reviewed,
        excursion_count=event.excursion_count,
        notes=event.notes,
        inspected_at=timestamp(event.inspected_at),
    )


def exception_recorded(event: Shipment.ExceptionRecorded) -> pb.ShipmentExceptionRecorded:
    return pb.ShipmentExceptionRecorded(
        **_ids(event),
        kind=event.kind,
        custodian=event.custodian,
        recorded_at=timestamp(event.recorded_at),
        occurred_at=timestamp(event.occurred_at) if event.occurred_at else None,
    )


PAYLOAD_MAPPERS: dict[type, Mapper] = {
    Shipment.Created: shipment_created,
    Shipment.CourierAssigned: courier_assigned,
    Shipment.UnitScanned: unit_scanned,
    Shipment.HandoffOffered: handoff_offered,
    Shipment.CustodyHandedOver: custody_handed_over,
    Shipment.ScanMismatchRecorded: scan_mismatch,
    Shipment.StabilityWindowBreached: window_breached,
    Shipment.TemperatureReadingsRecorded: readings_recorded,
    Shipment.TemperatureExcursionRecorded: excursion_recorded,
    Shipment.Delivered: delivered,
    Shipment.ReceiptInspected: receipt_inspected,
    Shipment.ExceptionRecorded: exception_recorded,
}

TRANSLATOR = AttributedEventTranslator(PAYLOAD_MAPPERS)
