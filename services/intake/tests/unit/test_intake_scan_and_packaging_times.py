"""Label scans and packaging in clinical time (issue 14 item 2): `VerifyLabel` carries when the
label was scanned (`scanned_at`) and `PackageUnit` when the unit was packaged (`packaged_at`),
both optional (default now), stored on their events and published; no scan before the unit's
labelling, no second scan before the first, no packaging before the labelling or the label's
verification, no freeze after the packaging. Every intake event tells its envelope when it
happened (`occurred_at`), so a journey entered weeks later still folds in clinical order;
events without a clinical time, and events stored before one was kept, keep the time they were
recorded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.utils import get_topic

from v2v.events.v1.envelope_pb2 import Envelope
from v2v.intake.events.v1 import events_pb2 as pb
from v2v_intake.adapters.payloads import TRANSLATOR, payload_of
from v2v_intake.domain.therapy import Therapy
from v2v_intake.views import CollectionInput, PackagingInput
from v2v_platform.envelope.codec import unsealed_envelope
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.proto_values import from_timestamp
from v2v_testkit.intake import (
    NOW,
    Intake,
    build_intake,
    enrolled,
    operator,
    proof,
    stored_events,
)

ENROLLED = NOW - timedelta(days=20)  # the journey is entered a fortnight after it happened
ENDED = NOW - timedelta(days=14)
COLLECTED = CollectionInput(ENDED - timedelta(hours=4), ENDED, 212.5, 12.4, 6.1, "")
LABELLED = ENDED + timedelta(minutes=20)
FIRST_SCAN = ENDED + timedelta(minutes=30)
SECOND_SCAN = ENDED + timedelta(minutes=35)
PACKAGED = ENDED + timedelta(minutes=50)
WRONG = "A12342500009900"  # another unit's DIN bar code
FRESH = PackagingInput("fresh-cold", 4.0, "GMP-B", None, PACKAGED)


@pytest.fixture
def intake() -> Intake:
    return build_intake()


def of_type(intake: Intake, kind: type) -> list[Any]:
    return [e for e in stored_events(intake) if isinstance(e, kind)]


def labelled(intake: Intake) -> tuple[str, str]:
    coi = enrolled(intake, enrolled_at=ENROLLED)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    collection_id = intake.app.record_collection(coi, COLLECTED, operator())
    [din] = intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator(), LABELLED)
    return coi, din


def envelope_of(event: Any) -> Envelope:
    """The (unsealed) envelope the outbox relay publishes for `event`."""
    outbound = TRANSLATOR.translate(event)
    assert outbound is not None
    return unsealed_envelope(outbound.content)


def scan_at(
    intake: Intake, coi: str, din: str, user_id: str, at: datetime | None, label: str = ""
) -> bool:
    """`user_id` scans `din`'s label (`label`: what the DIN bar code read; the unit's own by
    default) at `at` (None: not given)."""
    signed = proof(user_id)
    return intake.app.verify_label(coi, din, label or din, coi, signed, operator(user_id), at)


def verified(intake: Intake) -> tuple[str, str]:
    coi, din = labelled(intake)
    scan_at(intake, coi, din, "u-1", FIRST_SCAN)
    scan_at(intake, coi, din, "u-2", SECOND_SCAN)
    return coi, din


def test_scans_entered_after_the_fact_keep_and_publish_when_they_happened(
    intake: Intake,
) -> None:
    verified(intake)
    [first] = of_type(intake, Therapy.LabelScanned)
    [second] = of_type(intake, Therapy.LabelVerified)
    assert (first.scanned_at, second.scanned_at) == (FIRST_SCAN, SECOND_SCAN)
    scanned = payload_of(first)
    assert isinstance(scanned, pb.LabelScanned)
    assert from_timestamp(scanned.scanned_at) == FIRST_SCAN
    verification = payload_of(second)
    assert isinstance(verification, pb.LabelVerified)
    assert from_timestamp(verification.scanned_at) == SECOND_SCAN


def test_a_refused_scan_records_when_it_happened(intake: Intake) -> None:
    coi, din = labelled(intake)
    with pytest.raises(Refused, match="label refused"):
        scan_at(intake, coi, din, "u-1", FIRST_SCAN, label=WRONG)
    [mismatch] = of_type(intake, Therapy.LabelMismatchRecorded)
    assert mismatch.scanned_at == FIRST_SCAN
    published = payload_of(mismatch)
    assert isinstance(published, pb.LabelMismatchRecorded)
    assert from_timestamp(published.scanned_at) == FIRST_SCAN


def test_a_scan_given_no_time_is_scanned_now(intake: Intake) -> None:
    coi, din = labelled(intake)
    scan_at(intake, coi, din, "u-1", None)
    [first] = of_type(intake, Therapy.LabelScanned)
    assert first.scanned_at == NOW


def test_no_scan_before_the_labelling(intake: Intake) -> None:
    coi, din = labelled(intake)
    early = LABELLED - timedelta(minutes=1)  # the server's clock is weeks later: still refused
    with pytest.raises(InvalidInput, match=r"scanned_at .* before the labelling of"):
        scan_at(intake, coi, din, "u-1", early)
    with pytest.raises(InvalidInput, match=r"scanned_at .* before the labelling of"):
        scan_at(intake, coi, din, "u-1", early, label=WRONG)
    assert of_type(intake, Therapy.LabelScanned) == []
    assert of_type(intake, Therapy.LabelMismatchRecorded) == []
    assert scan_at(intake, coi, din, "u-1", LABELLED) is False


def test_no_second_scan_before_the_first(intake: Intake) -> None:
    coi, din = labelled(intake)
    scan_at(intake, coi, din, "u-1", FIRST_SCAN)
    with pytest.raises(InvalidInput, match=r"scanned_at .* before the first scan of"):
        scan_at(intake, coi, din, "u-2", FIRST_SCAN - timedelta(minutes=1))
    assert of_type(intake, Therapy.LabelVerified) == []
    assert scan_at(intake, coi, din, "u-2", FIRST_SCAN) is True


def test_a_scan_in_the_future_or_without_a_zone_is_refused(intake: Intake) -> None:
    coi, din = labelled(intake)
    with pytest.raises(InvalidInput, match=r"scanned_at .* is in the future"):
        scan_at(intake, coi, din, "u-1", NOW + timedelta(hours=1))
    with pytest.raises(InvalidInput, match=r"scanned_at must carry a time zone"):
        scan_at(intake, coi, din, "u-1", FIRST_SCAN.replace(tzinfo=None))
    assert of_type(intake, Therapy.LabelScanned) == []


def test_a_unit_packaged_after_the_fact_keeps_and_publishes_when(intake: Intake) -> None:
    coi, din = verified(intake)
    window = intake.app.package_unit(coi, din, FRESH, operator())
    assert window == ENDED
    [packaged] = of_type(intake, Therapy.UnitPackaged)
    assert packaged.packaged_at == PACKAGED
    published = payload_of(packaged)
    assert isinstance(published, pb.UnitPackaged)
    assert from_timestamp(published.packaged_at) == PACKAGED


def test_a_packaging_given_no_time_is_packaged_now(intake: Intake) -> None:
    coi, din = verified(intake)
    intake.app.package_unit(coi, din, PackagingInput("fresh-cold", 4.0, "GMP-B"), operator())
    [packaged] = of_type(intake, Therapy.UnitPackaged)
    assert packaged.packaged_at == NOW


def test_no_packaging_before_the_labelling_or_the_verification(intake: Intake) -> None:
    coi, din = verified(intake)
    for at, what in ((LABELLED - timedelta(minutes=1), "labelling"), (SECOND_SCAN, "")):
        early = PackagingInput("fresh-cold", 4.0, "GMP-B", None, at - timedelta(seconds=1))
        expected = f"the {what or 'verification'} of {din}"
        with pytest.raises(InvalidInput, match=rf"packaged_at .* before {expected}"):
            intake.app.package_unit(coi, din, early, operator())
    with pytest.raises(InvalidInput, match=r"packaged_at .* is in the future"):
        late = PackagingInput("fresh-cold", 4.0, "GMP-B", None, NOW + timedelta(hours=1))
        intake.app.package_unit(coi, din, late, operator())
    assert of_type(intake, Therapy.UnitPackaged) == []
    on_time = PackagingInput("fresh-cold", 4.0, "GMP-B", None, SECOND_SCAN)
    intake.app.package_unit(coi, din, on_time, operator())


def test_no_freeze_after_the_packaging(intake: Intake) -> None:
    coi, din = verified(intake)
    frozen = PACKAGED + timedelta(minutes=1)
    after = PackagingInput("cryo", -180.0, "GMP-B", frozen, PACKAGED)
    with pytest.raises(InvalidInput, match=r"frozen_at .* after the packaging"):
        intake.app.package_unit(coi, din, after, operator())
    assert of_type(intake, Therapy.UnitPackaged) == []
    at_packaging = PackagingInput("cryo", -180.0, "GMP-B", PACKAGED, PACKAGED)
    assert intake.app.package_unit(coi, din, at_packaging, operator()) == PACKAGED


def test_intake_events_carry_their_clinical_time_in_the_envelope(intake: Intake) -> None:
    coi, din = verified(intake)
    intake.app.package_unit(coi, din, FRESH, operator())
    with pytest.raises(Refused):  # a scan of an already verified unit: nothing recorded
        scan_at(intake, coi, din, "u-3", PACKAGED)
    intake.app.erase_personal_details(coi, operator().because("consent withdrawn"))
    occurred: dict[str, datetime] = {}
    recorded: dict[str, datetime] = {}
    for event in stored_events(intake):
        envelope = envelope_of(event)
        occurred[type(event).__name__] = envelope.occurred_at.ToDatetime(tzinfo=UTC)
        recorded[type(event).__name__] = envelope.recorded_at.ToDatetime(tzinfo=UTC)
    assert occurred == {
        "Enrolled": ENROLLED,
        "SlotBooked": NOW,  # booked without a time given: the service clock's now
        "CollectionRecorded": ENDED,
        "UnitLabelled": LABELLED,
        "LabelScanned": FIRST_SCAN,
        "LabelVerified": SECOND_SCAN,
        "UnitPackaged": PACKAGED,
        "PersonalDetailsErased": recorded["PersonalDetailsErased"],
    }
    assert recorded["UnitPackaged"] - PACKAGED > timedelta(days=13)


def test_a_refused_scan_carries_its_clinical_time_in_the_envelope(intake: Intake) -> None:
    coi, din = labelled(intake)
    with pytest.raises(Refused):
        scan_at(intake, coi, din, "u-1", FIRST_SCAN, label=WRONG)
    [mismatch] = of_type(intake, Therapy.LabelMismatchRecorded)
    assert envelope_of(mismatch).occurred_at.ToDatetime(tzinfo=UTC) == FIRST_SCAN


RECORDED_LONG_AGO = NOW - timedelta(days=400)


def stored_before(kind: type, **fields: Any) -> Any:
    """An event of `kind` as stored before its clinical time was kept (the field absent),
    recorded long ago."""
    event_class: Any = kind
    event = event_class(
        originator_id=uuid4(),
        originator_version=2,
        timestamp=RECORDED_LONG_AGO,
        coi="CHA123425000017",
        actor={"user_id": "u-1", "printed_name": "Operator u-1", "role": "collection"},
        site_id="HOSP-A",
        reason="",
        traceparent=None,
        **fields,
    )
    for clinical_time in ("enrolled_at", "labelled_at", "scanned_at"):
        event.__dict__.pop(clinical_time, None)  # as the mapper rebuilds an older event
    return event


def test_events_stored_before_their_clinical_time_was_kept_occurred_when_recorded() -> None:
    din = "A12342500004200"
    old_events = [
        stored_before(
            Therapy.Enrolled,
            patient_pseudonym="PSN-1",
            treating_site_id="HOSP-A",
            sealed_personal_details="aesgcm1:x",
            originator_topic=get_topic(Therapy),
        ),
        stored_before(
            Therapy.UnitLabelled, collection_id="C-A01", din=din, unit_kind="apheresis-bag"
        ),
        stored_before(
            Therapy.LabelScanned, din=din, user_id="u-1", signature=None, signature_meaning=""
        ),
        stored_before(
            Therapy.LabelVerified,
            din=din,
            first_user_id="u-1",
            second_user_id="u-2",
            first_signature=None,
            second_signature=None,
            signature_meaning="",
        ),
        stored_before(
            Therapy.LabelMismatchRecorded,
            expected_din=din,
            scanned_label="x",
            scanned_coi="y",
            reason_code="din-mismatch",
            explanation="x",
        ),
    ]
    for event in old_events:
        assert event.occurred_at == RECORDED_LONG_AGO, type(event).__name__
        envelope = envelope_of(event)
        assert envelope.occurred_at.ToDatetime(tzinfo=UTC) == RECORDED_LONG_AGO
    assert not payload_of(old_events[2]).HasField("scanned_at")
    assert not payload_of(old_events[3]).HasField("scanned_at")
    assert not payload_of(old_events[4]).HasField("scanned_at")
