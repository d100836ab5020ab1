"""Stored domain events -> v2v.release.events.v1 payloads, and the outbox translator.

Every event class of the `BatchRelease` aggregate has a mapper here (hash chains must stay
continuous); each carries its batch's valid COI, the envelope's COI and the Kafka key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from v2v.common.v1 import common_pb2
from v2v.release.events.v1 import events_pb2 as pb
from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.proto_values import condition_to_proto, signature_to_proto, timestamp
from v2v_release.domain.batch_release import BatchRelease
from v2v_release.domain.specification import Criterion

Mapper = Callable[[Any], Message]


def test_criterion(stored: dict[str, Any]) -> pb.TestCriterion:
    criterion = Criterion.from_dict(stored)
    return pb.TestCriterion(
        test=criterion.test,
        criterion=criterion.text,
        phase=criterion.phase.value,
        unit=criterion.unit,
    )


def condition(stored: str) -> common_pb2.Condition.ValueType:
    return condition_to_proto(stored) if stored else common_pb2.CONDITION_UNSPECIFIED


def batch_release_opened(event: BatchRelease.Opened) -> pb.BatchReleaseOpened:
    return pb.BatchReleaseOpened(
        coi=event.coi,
        batch_id=event.batch_id,
        manufacturing_site_id=event.manufacturing_site_id,
        product_dins=event.product_dins,
        condition=condition(event.condition),
        batch_started_at=timestamp(event.batch_started_at),
        spec_version=event.spec_version,
        criteria=[test_criterion(c) for c in event.criteria],
    )


def qc_result_recorded(event: BatchRelease.QcResultRecorded) -> pb.QcResultRecorded:
    return pb.QcResultRecorded(
        coi=event.coi,
        batch_id=event.batch_id,
        result_id=event.result_id,
        test=event.test,
        method=event.method,
        value=event.value,
        unit=event.unit,
        result_at=timestamp(event.result_at),
        analyst=common_pb2.Operator(**event.analyst),
        spec_version=event.spec_version,
        criterion=event.criterion,
        passed=event.passed,
        corrects_result_id=event.corrects_result_id,
        pending_tests=event.pending_tests,
    )


def post_release_failure(
    event: BatchRelease.PostReleaseFailureRecorded,
) -> pb.PostReleaseFailureRecorded:
    return pb.PostReleaseFailureRecorded(
        coi=event.coi,
        batch_id=event.batch_id,
        failure_id=event.failure_id,
        spec_version=event.spec_version,
        product_dins=event.product_dins,
        test=event.test,
        value=event.value,
        unit=event.unit,
        criterion=event.criterion,
        result_at=timestamp(event.result_at),
        released_as=event.released_as,
    )


def provisionally_certified(
    event: BatchRelease.ProvisionallyCertified,
) -> pb.ProvisionallyCertified:
    return pb.ProvisionallyCertified(
        coi=event.coi,
        batch_id=event.batch_id,
        spec_version=event.spec_version,
        product_dins=event.product_dins,
        certified_at=timestamp(event.certified_at),
        qp_signature=signature_to_proto(event.qp_signature),
        pending_tests=event.pending_tests,
    )


def finally_certified(event: BatchRelease.FinallyCertified) -> pb.FinallyCertified:
    return pb.FinallyCertified(
        coi=event.coi,
        batch_id=event.batch_id,
        spec_version=event.spec_version,
        product_dins=event.product_dins,
        certified_at=timestamp(event.certified_at),
        qp_signature=signature_to_proto(event.qp_signature),
    )


def batch_rejected(event: BatchRelease.Rejected) -> pb.BatchRejected:
    return pb.BatchRejected(
        coi=event.coi,
        batch_id=event.batch_id,
        spec_version=event.spec_version,
        product_dins=event.product_dins,
        rejected_at=timestamp(event.rejected_at),
        reason=event.reason,
        failed_tests=event.failed_tests,
        qp_signature=signature_to_proto(event.qp_signature),
    )


def oos_justified(event: BatchRelease.OosReleaseJustified) -> pb.OosReleaseJustified:
    return pb.OosReleaseJustified(
        coi=event.coi,
        batch_id=event.batch_id,
        spec_version=event.spec_version,
        product_dins=event.product_dins,
        failed_tests=event.failed_tests,
        justification=event.justification,
        justified_at=timestamp(event.justified_at),
        qp_signature=signature_to_proto(event.qp_signature),
    )


def oos_accepted(event: BatchRelease.OosReleaseAccepted) -> pb.OosReleaseAccepted:
    return pb.OosReleaseAccepted(
        coi=event.coi,
        batch_id=event.batch_id,
        spec_version=event.spec_version,
        product_dins=event.product_dins,
        treating_site_id=event.treating_site_id,
        accepted_at=timestamp(event.accepted_at),
        physician_signature=signature_to_proto(event.physician_signature),
    )


PAYLOAD_MAPPERS: dict[type, Mapper] = {
    BatchRelease.Opened: batch_release_opened,
    BatchRelease.QcResultRecorded: qc_result_recorded,
    BatchRelease.PostReleaseFailureRecorded: post_release_failure,
    BatchRelease.ProvisionallyCertified: provisionally_certified,
    BatchRelease.FinallyCertified: finally_certified,
    BatchRelease.Rejected: batch_rejected,
    BatchRelease.OosReleaseJustified: oos_justified,
    BatchRelease.OosReleaseAccepted: oos_accepted,
}

TRANSLATOR = AttributedEventTranslator(PAYLOAD_MAPPERS)
