"""Clinical time in intake (issue 14): an enrolment carries when it happened (optional), kept
apart from when it was recorded, and causality within the chain is refused naming the field:
no collection before the enrolment, no labelling before the collection's end, no packaging
before the labelling."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from v2v_intake.domain.therapy import Therapy
from v2v_intake.views import CollectionInput, PackagingInput
from v2v_platform.errors import InvalidInput
from v2v_testkit.intake import (
    DETAILS,
    NOW,
    Intake,
    build_intake,
    collection,
    operator,
    scan,
    stored_events,
)

ENROLLED = NOW - timedelta(days=3)


@pytest.fixture
def intake() -> Intake:
    return build_intake()


def enrolled_after_the_fact(intake: Intake) -> str:
    coi = intake.app.enrol_patient("PSN-0001", DETAILS, "HOSP-A", operator(), ENROLLED)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    return coi


def test_an_enrolment_entered_after_the_fact_keeps_when_it_happened(intake: Intake) -> None:
    coi = enrolled_after_the_fact(intake)
    (enrolment,) = [e for e in stored_events(intake) if isinstance(e, Therapy.Enrolled)]
    assert enrolment.enrolled_at == ENROLLED
    intake.app.record_collection(coi, collection(hours_ago=60), operator())  # after enrolment


def test_no_collection_before_the_enrolment(intake: Intake) -> None:
    coi = enrolled_after_the_fact(intake)
    early = CollectionInput(
        ENROLLED - timedelta(hours=1), ENROLLED + timedelta(hours=3), 212.5, 12.4, 6.1, ""
    )
    with pytest.raises(InvalidInput, match=r"started_at .* before the enrolment"):
        intake.app.record_collection(coi, early, operator())
    assert not any(isinstance(e, Therapy.CollectionRecorded) for e in stored_events(intake))


def test_an_enrolment_in_the_future_or_without_a_zone_is_refused(intake: Intake) -> None:
    with pytest.raises(InvalidInput, match=r"enrolled_at .* is in the future"):
        intake.app.enrol_patient(
            "PSN-0001", DETAILS, "HOSP-A", operator(), NOW + timedelta(hours=1)
        )
    with pytest.raises(InvalidInput, match=r"enrolled_at must carry a time zone"):
        naive = ENROLLED.replace(tzinfo=None)
        intake.app.enrol_patient("PSN-0002", DETAILS, "HOSP-A", operator(), naive)


def test_no_labelling_before_the_collection_end(intake: Intake) -> None:
    coi = enrolled_after_the_fact(intake)
    ends_soon = CollectionInput(
        NOW - timedelta(hours=4), NOW + timedelta(minutes=2), 212.5, 12.4, 6.1, ""
    )  # within the clock skew: accepted, but it has not ended yet
    collection_id = intake.app.record_collection(coi, ends_soon, operator())
    with pytest.raises(InvalidInput, match=r"labelled_at .* before the collection's end"):
        intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator())
    intake.clock.advance(minutes=3)
    assert len(intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator())) == 1


def test_no_packaging_before_the_labelling(intake: Intake) -> None:
    coi = enrolled_after_the_fact(intake)
    collection_id = intake.app.record_collection(coi, collection(), operator())
    [din] = intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator())
    scan(intake, coi, din, "u-1")
    scan(intake, coi, din, "u-2")
    intake.clock.advance(minutes=-10)  # a site clock set back: packaged "before" its label
    packaging = PackagingInput("fresh-cold", 4.0, "GMP-B", None)
    with pytest.raises(InvalidInput, match=r"packaged_at .* before the labelling of"):
        intake.app.package_unit(coi, din, packaging, operator())
    intake.clock.advance(minutes=10)
    intake.app.package_unit(coi, din, packaging, operator())
