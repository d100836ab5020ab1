"""Stored domain events -> v2v.infusion.events.v1 payloads, and the outbox translator.

Every event class the aggregates of the (published) infusion application store has a mapper
here: hash chains must stay continuous. Each carries its chain's valid COI, the envelope's
COI and the Kafka key. The unpublished records (unattributable scans) are never published.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.message import Message

from v2v.common.v1 import common_pb2
from v2v.infusion.events.v1 import events_pb2 as pb
from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.mismatches import BedsideMismatch
from v2v_infusion.domain.product import ProductAtSite
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.proto_values import condition_to_proto, signature_to_proto, timestamp

Mapper = Callable[[Any], Message]


def operator_message(person: Mapping[str, str]) -> common_pb2.Operator:
    return common_pb2.Operator(user_id=person["user_id"], printed_name=person["printed_name"])


def product_received(event: ProductAtSite.Received) -> pb.ProductReceived:
    return pb.ProductReceived(
        coi=event.coi,
        din=event.din,
        treating_site_id=event.treating_site_id,
        batch_id=event.batch_id,
        condition=condition_to_proto(event.condition),
        received_at=timestamp(event.received_at),
    )


def product_stored(event: ProductAtSite.Stored) -> pb.ProductStored:
    return pb.ProductStored(
        coi=event.coi,
        din=event.din,
        location=event.location,
        condition=condition_to_proto(event.condition),
        stored_at=timestamp(event.stored_at),
    )


def thaw_started(event: ProductAtSite.ThawStarted) -> pb.ThawStarted:
    return pb.ThawStarted(
        coi=event.coi,
        din=event.din,
        thaw_started_at=timestamp(event.thaw_started_at),
        infuse_by=timestamp(event.infuse_by),
        window_minutes=event.window_minutes,
        protocol_rules=event.protocol_rules,
    )


def bedside_scan_recorded(event: ProductAtSite.BedsideScanRecorded) -> pb.BedsideScanRecorded:
    return pb.BedsideScanRecorded(
        coi=event.coi,
        din=event.din,
        wristband_coi=event.wristband_coi,
        scanned_at=timestamp(event.scanned_at),
        signature=signature_to_proto(event.signature),
    )


def bedside_verified(event: ProductAtSite.BedsideVerified) -> pb.BedsideVerified:
    return pb.BedsideVerified(
        coi=event.coi,
        din=event.din,
        first_user=operator_message(event.first_user),
        second_user=operator_message(event.second_user),
        verified_at=timestamp(event.verified_at),
        release_basis=event.release_basis,
        infuse_by=timestamp(event.infuse_by),
        protocol_rules=event.protocol_rules,
        first_signature=signature_to_proto(event.first_signature),
        second_signature=signature_to_proto(event.second_signature),
    )


def bedside_mismatch(
    event: ProductAtSite.BedsideMismatchRecorded | BedsideMismatch.Recorded,
) -> pb.BedsideMismatchRecorded:
    return pb.BedsideMismatchRecorded(
        coi=event.coi,
        scanned_din=event.scanned_din,
        wristband_coi=event.wristband_coi,
        reason_code=event.reason_code,
        explanation=event.explanation,
        scanned_at=timestamp(event.scanned_at),
    )


def infusion_administered(event: ProductAtSite.InfusionAdministered) -> pb.InfusionAdministered:
    return pb.InfusionAdministered(
        coi=event.coi,
        din=event.din,
        administered_at=timestamp(event.administered_at),
        dose_car_cells_per_kg=event.dose_car_cells_per_kg,
        volume_ml=event.volume_ml,
        administered_by=operator_message(event.administered_by),
        witnessed_by=operator_message(event.witnessed_by),
        release_basis=event.release_basis,
        witness_signature=signature_to_proto(event.witness_signature),
    )


def adverse_event(event: ProductAtSite.AdverseEventRecorded) -> pb.AdverseEventRecorded:
    return pb.AdverseEventRecorded(
        coi=event.coi,
        din=event.din,
        kind=event.kind,
        grade=event.grade,
        onset_at=timestamp(event.onset_at),
        notes=event.notes,
    )


def failure_acknowledged(
    event: FailureAcknowledgement.Acknowledged,
) -> pb.PostReleaseFailureAcknowledged:
    return pb.PostReleaseFailureAcknowledged(
        coi=event.coi,
        failure_id=event.failure_id,
        batch_id=event.batch_id,
        test=event.test,
        product_dins=event.product_dins,
        decision=event.decision,
        acknowledged_at=timestamp(event.acknowledged_at),
        physician_signature=signature_to_proto(event.physician_signature),
    )


PAYLOAD_MAPPERS: dict[type, Mapper] = {
    ProductAtSite.Received: product_received,
    ProductAtSite.Stored: product_stored,
    ProductAtSite.ThawStarted: thaw_started,
    ProductAtSite.BedsideScanRecorded: bedside_scan_recorded,
    ProductAtSite.BedsideVerified: bedside_verified,
    ProductAtSite.BedsideMismatchRecorded: bedside_mismatch,
    ProductAtSite.InfusionAdministered: infusion_administered,
    ProductAtSite.AdverseEventRecorded: adverse_event,
    BedsideMismatch.Recorded: bedside_mismatch,
    FailureAcknowledgement.Acknowledged: failure_acknowledged,
}

TRANSLATOR = AttributedEventTranslator(PAYLOAD_MAPPERS)
