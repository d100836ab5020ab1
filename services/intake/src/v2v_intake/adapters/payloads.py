"""Stored Therapy events -> v2v.intake.events.v1 payloads, and the outbox translator.

Every event class the Therapy aggregate stores has a mapper here (the relay refuses a
stored event without one: hash chains must stay continuous). Personal details are never
mapped: only the opaque pseudonym leaves the service.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.intake.events.v1 import events_pb2 as pb
from v2v_intake.domain.therapy import Therapy
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.proto_values import condition_to_proto, signature_to_proto, timestamp


def optional_timestamp(moment: datetime | None) -> Timestamp | None:
    """None (the field left unset) for a time an older stored event does not carry."""
    return None if moment is None else timestamp(moment)


def patient_enrolled(event: Therapy.Enrolled) -> pb.PatientEnrolled:
    """`enrolled_at` stays unset on enrolments stored before it was kept."""
    return pb.PatientEnrolled(
        coi=event.coi,
        patient_pseudonym=event.patient_pseudonym,
        enrolling_site_id=event.site_id,
        treating_site_id=event.treating_site_id,
        enrolled_at=optional_timestamp(event.enrolled_at),
    )


def personal_details_erased(event: Therapy.PersonalDetailsErased) -> pb.PersonalDetailsErased:
    return pb.PersonalDetailsErased(coi=event.coi)


def slot_booked(event: Therapy.SlotBooked) -> pb.SlotBooked:
    return pb.SlotBooked(
        coi=event.coi,
        manufacturing_site_id=event.manufacturing_site_id,
        slot_id=event.slot_id,
        slot_date=event.slot_date,
    )


def collection_recorded(event: Therapy.CollectionRecorded) -> pb.CollectionRecorded:
    return pb.CollectionRecorded(
        coi=event.coi,
        collection_id=event.collection_id,
        collection_site_id=event.collection_site_id,
        started_at=timestamp(event.started_at),
        ended_at=timestamp(event.ended_at),
        volume_ml=event.volume_ml,
        total_nucleated_cells_e9=event.total_nucleated_cells_e9,
        cd3_cells_e9=event.cd3_cells_e9,
        slot_id=event.slot_id,
    )


def unit_labelled(event: Therapy.UnitLabelled) -> pb.UnitLabelled:
    """`labelled_at` stays unset on labels stored before it was kept."""
    return pb.UnitLabelled(
        coi=event.coi,
        collection_id=event.collection_id,
        din=event.din,
        unit_kind=event.unit_kind,
        labelled_at=optional_timestamp(event.labelled_at),
    )


def label_scanned(event: Therapy.LabelScanned) -> pb.LabelScanned:
    """`scanned_at` (as on the two following payloads) stays unset on scans stored before it
    was kept."""
    return pb.LabelScanned(
        coi=event.coi,
        din=event.din,
        user_id=event.user_id,
        signature=signature_to_proto(event.signature),
        scanned_at=optional_timestamp(event.scanned_at),
    )


def label_verified(event: Therapy.LabelVerified) -> pb.LabelVerified:
    return pb.LabelVerified(
        coi=event.coi,
        din=event.din,
        first_user_id=event.first_user_id,
        second_user_id=event.second_user_id,
        first_signature=signature_to_proto(event.first_signature),
        second_signature=signature_to_proto(event.second_signature),
        scanned_at=optional_timestamp(event.scanned_at),
    )


def label_mismatch_recorded(event: Therapy.LabelMismatchRecorded) -> pb.LabelMismatchRecorded:
    return pb.LabelMismatchRecorded(
        coi=event.coi,
        expected_din=event.expected_din,
        scanned_label=event.scanned_label,
        scanned_coi=event.scanned_coi,
        reason_code=event.reason_code,
        explanation=event.explanation,
        scanned_at=optional_timestamp(event.scanned_at),
    )


def unit_packaged(event: Therapy.UnitPackaged) -> pb.UnitPackaged:
    return pb.UnitPackaged(
        coi=event.coi,
        din=event.din,
        condition=condition_to_proto(event.condition),
        window_starts_at=timestamp(event.window_starts_at),
        packaged_at=timestamp(event.packaged_at),
        manufacturing_site_id=event.manufacturing_site_id,
        temperature_c=event.temperature_c,
    )


PAYLOAD_MAPPERS: dict[type, Callable[[Any], Message]] = {
    Therapy.Enrolled: patient_enrolled,
    Therapy.PersonalDetailsErased: personal_details_erased,
    Therapy.SlotBooked: slot_booked,
    Therapy.CollectionRecorded: collection_recorded,
    Therapy.UnitLabelled: unit_labelled,
    Therapy.LabelScanned: label_scanned,
    Therapy.LabelVerified: label_verified,
    Therapy.LabelMismatchRecorded: label_mismatch_recorded,
    Therapy.UnitPackaged: unit_packaged,
}

TRANSLATOR = AttributedEventTranslator(PAYLOAD_MAPPERS)


def payload_of(event: Any) -> Message:
    return PAYLOAD_MAPPERS[type(event)](event)
