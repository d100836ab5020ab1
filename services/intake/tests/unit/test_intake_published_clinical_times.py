"""Enrolment and labelling in clinical time (issue 14 item 2): an enrolment given no time is
enrolled now (never without a time), a labelling carries when it happened (default now), not
before its collection's end nor in the future beyond the skew, and both times are published
(`PatientEnrolled.enrolled_at`, `UnitLabelled.labelled_at`)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from v2v.intake.events.v1 import events_pb2 as pb
from v2v_intake.adapters.payloads import payload_of
from v2v_intake.domain.therapy import Therapy
from v2v_intake.views import CollectionInput, PackagingInput
from v2v_platform.errors import InvalidInput
from v2v_platform.proto_values import from_timestamp
from v2v_testkit.intake import (
    DETAILS,
    NOW,
    Intake,
    build_intake,
    collection,
    enrolled,
    operator,
    scan,
    stored_events,
)

ENROLLED = NOW - timedelta(days=5)
ENDED = NOW - timedelta(days=2)  # a collection entered after the fact
COLLECTED = CollectionInput(ENDED - timedelta(hours=4), ENDED, 212.5, 12.4, 6.1, "")


@pytest.fixture
def intake() -> Intake:
    return build_intake()


def of_type(intake: Intake, kind: type) -> list[object]:
    return [e for e in stored_events(intake) if isinstance(e, kind)]


def collected_days_ago(intake: Intake) -> tuple[str, str]:
    coi = enrolled(intake, enrolled_at=ENROLLED)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    return coi, intake.app.record_collection(coi, COLLECTED, operator())


def test_an_enrolment_given_no_time_is_enrolled_now(intake: Intake) -> None:
    coi = intake.app.enrol_patient("PSN-0001", DETAILS, "HOSP-A", operator())
    [enrolment] = of_type(intake, Therapy.Enrolled)
    assert isinstance(enrolment, Therapy.Enrolled) and enrolment.enrolled_at == NOW
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    with pytest.raises(InvalidInput, match=r"started_at .* before the enrolment"):
        intake.app.record_collection(coi, collection(hours_ago=2), operator())
    assert of_type(intake, Therapy.CollectionRecorded) == []


def test_patient_enrolled_publishes_the_clinical_enrolment_time(intake: Intake) -> None:
    enrolled(intake, enrolled_at=ENROLLED)
    [enrolment] = of_type(intake, Therapy.Enrolled)
    payload = payload_of(enrolment)
    assert isinstance(payload, pb.PatientEnrolled)
    assert from_timestamp(payload.enrolled_at) == ENROLLED


def test_units_labelled_after_the_fact_keep_and_publish_when(intake: Intake) -> None:
    coi, collection_id = collected_days_ago(intake)
    labelled_at = ENDED + timedelta(minutes=20)
    [din] = intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator(), labelled_at)
    [label] = of_type(intake, Therapy.UnitLabelled)
    assert isinstance(label, Therapy.UnitLabelled) and label.labelled_at == labelled_at
    payload = payload_of(label)
    assert isinstance(payload, pb.UnitLabelled)
    assert from_timestamp(payload.labelled_at) == labelled_at
    scan(intake, coi, din, "u-1")
    scan(intake, coi, din, "u-2")
    intake.app.package_unit(coi, din, PackagingInput("fresh-cold", 4.0, "GMP-B", None), operator())


def test_a_labelling_given_no_time_is_labelled_now(intake: Intake) -> None:
    coi, collection_id = collected_days_ago(intake)
    intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator())
    [label] = of_type(intake, Therapy.UnitLabelled)
    assert isinstance(label, Therapy.UnitLabelled) and label.labelled_at == NOW


def test_no_labelling_before_the_collection_end_in_clinical_time(intake: Intake) -> None:
    coi, collection_id = collected_days_ago(intake)
    early = ENDED - timedelta(minutes=1)  # the server's clock is days later: still refused
    with pytest.raises(InvalidInput, match=r"labelled_at .* before the collection's end"):
        intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator(), early)
    assert of_type(intake, Therapy.UnitLabelled) == []
    assert intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator(), ENDED)


def test_a_labelling_in_the_future_or_without_a_zone_is_refused(intake: Intake) -> None:
    coi, collection_id = collected_days_ago(intake)
    later = NOW + timedelta(hours=1)
    with pytest.raises(InvalidInput, match=r"labelled_at .* is in the future"):
        intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator(), later)
    naive = (ENDED + timedelta(hours=1)).replace(tzinfo=None)
    with pytest.raises(InvalidInput, match=r"labelled_at must carry a time zone"):
        intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator(), naive)
    assert of_type(intake, Therapy.UnitLabelled) == []


def test_events_stored_before_the_times_were_kept_publish_them_unset(intake: Intake) -> None:
    coi, collection_id = collected_days_ago(intake)
    intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator())
    [enrolment] = of_type(intake, Therapy.Enrolled)
    [label] = of_type(intake, Therapy.UnitLabelled)
    assert isinstance(enrolment, Therapy.Enrolled) and isinstance(label, Therapy.UnitLabelled)
    enrolment.__dict__.pop("enrolled_at")  # as an event stored before the field existed
    label.__dict__.pop("labelled_at")
    assert not payload_of(enrolment).HasField("enrolled_at")
    assert not payload_of(label).HasField("labelled_at")
