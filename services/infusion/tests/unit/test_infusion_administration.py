"""Infusion of a bedside-verified unit (I4): by one verifier witnessed by the other, with a
dose and a volume; release, post-release failures and the window are checked again at the
infusion. Adverse events (ASTCT CRS / ICANS grades 1-4) only after the infusion."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_infusion.application import Administration, AdverseEventReport, InfusionApplication
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import InfusionRefused, ReleaseStatus
from v2v_platform.errors import InvalidInput, NotFound, Refused
from v2v_testkit.infusion import (
    COI,
    FIRST_NURSE,
    RELEASED_AT,
    SECOND_NURSE,
    Clock,
    InMemoryFacts,
    kinds,
    nurse,
    product_din,
    receive_released,
    scanning,
    stored_events,
    verify_at_bedside,
    witnessing,
)

WITNESS = (SECOND_NURSE, "Nurse u-nurse-2")


def administration(din: str, dose: float = 1.2e6, volume: float = 68.5) -> Administration:
    return Administration(din, None, dose, volume, *WITNESS, witnessing(SECOND_NURSE))


@pytest.fixture
def verified(app: InfusionApplication, facts: InMemoryFacts) -> str:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    return din


def refused_without_change(app: InfusionApplication, given: Administration, match: str) -> None:
    before = kinds(app)
    with pytest.raises((Refused, InvalidInput), match=match):
        app.administer_infusion(given, nurse(FIRST_NURSE))
    assert kinds(app) == before


def test_a_verified_unit_is_infused(
    app: InfusionApplication, verified: str, facts: InMemoryFacts, clock: Clock
) -> None:
    facts.release(status=ReleaseStatus.FINAL)  # finally certified since verification
    view = app.administer_infusion(administration(verified), nurse(FIRST_NURSE))
    assert (view.status, view.administered_at) == ("infused", clock.now)
    event = stored_events(app)[-1]
    assert isinstance(event, ProductAtSite.InfusionAdministered)
    assert (event.coi, event.dose_car_cells_per_kg, event.volume_ml) == (COI, 1.2e6, 68.5)
    assert event.administered_by == {"user_id": FIRST_NURSE, "printed_name": "Nurse u-nurse"}
    assert event.witnessed_by == {"user_id": SECOND_NURSE, "printed_name": "Nurse u-nurse-2"}
    assert event.release_basis == "final"


def test_an_unverified_unit_is_not_infused(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = receive_released(app, facts)
    app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), nurse(FIRST_NURSE))
    refused_without_change(app, administration(din), "not bedside-verified")


def test_an_unreceived_unit_is_not_found(app: InfusionApplication) -> None:
    with pytest.raises(NotFound):
        app.administer_infusion(administration(product_din(7)), nurse())


def test_the_witness_must_be_the_other_verifier(app: InfusionApplication, verified: str) -> None:
    stranger = Administration(
        verified, None, 1.0e6, 60.0, "u-stranger", "Sam Stranger", witnessing("u-stranger")
    )
    refused_without_change(app, stranger, "one of them administers")
    myself = Administration(
        verified, None, 1.0e6, 60.0, FIRST_NURSE, "Nurse u-nurse", witnessing(FIRST_NURSE)
    )
    refused_without_change(app, myself, "one of them administers")


def test_the_administering_user_must_be_a_verifier(app: InfusionApplication, verified: str) -> None:
    before = kinds(app)
    with pytest.raises(Refused, match="one of them administers"):
        app.administer_infusion(administration(verified), nurse("u-stranger"))
    assert kinds(app) == before


@pytest.mark.parametrize(("dose", "volume"), [(0.0, 60.0), (1.0e6, 0.0), (-1.0, 60.0)])
def test_dose_and_volume_must_be_positive(
    app: InfusionApplication, verified: str, dose: float, volume: float
) -> None:
    refused_without_change(app, administration(verified, dose, volume), "must be > 0")


@pytest.mark.parametrize(
    ("status", "code"),
    [(ReleaseStatus.REJECTED, "rejected"), (ReleaseStatus.NONE, "not-released")],
)
def test_a_release_withdrawn_since_verification_is_refused(
    app: InfusionApplication, verified: str, facts: InMemoryFacts, status: ReleaseStatus, code: str
) -> None:
    facts.release(status=status, released_at=None)
    with pytest.raises(InfusionRefused, match=code) as refused:
        app.administer_infusion(administration(verified), nurse(FIRST_NURSE))
    assert refused.value.reason_code == code
    assert kinds(app)[-1] == "ProductAtSite.BedsideVerified"


def test_a_failure_raised_since_verification_is_refused(
    app: InfusionApplication, verified: str, facts: InMemoryFacts
) -> None:
    facts.fail(dins=[verified])
    refused_without_change(app, administration(verified), "unacknowledged-failure")


def test_a_window_passed_since_verification_is_refused(
    app: InfusionApplication, verified: str, clock: Clock
) -> None:
    clock.now = RELEASED_AT + timedelta(hours=73)
    refused_without_change(app, administration(verified), "window-expired")


def test_an_infused_unit_is_not_infused_again(app: InfusionApplication, verified: str) -> None:
    app.administer_infusion(administration(verified), nurse(FIRST_NURSE))
    refused_without_change(app, administration(verified), "already infused")


def test_adverse_events_follow_the_infusion(
    app: InfusionApplication, verified: str, clock: Clock
) -> None:
    report = AdverseEventReport(verified, "crs", 2, None, "fever, hypotension")
    with pytest.raises(Refused, match="not been infused"):
        app.record_adverse_event(report, nurse())
    app.administer_infusion(administration(verified), nurse(FIRST_NURSE))
    clock.advance(days=2)
    view = app.record_adverse_event(report, nurse())
    event = stored_events(app)[-1]
    assert isinstance(event, ProductAtSite.AdverseEventRecorded)
    assert (event.kind, event.grade, event.onset_at, event.notes) == (
        "crs",
        2,
        clock.now,
        "fever, hypotension",
    )
    assert [(e.kind, e.grade) for e in view.adverse_events] == [("crs", 2)]
    icans = AdverseEventReport(verified, "ICANS", 4, clock.now, "")
    assert [e.kind for e in app.record_adverse_event(icans, nurse()).adverse_events] == [
        "crs",
        "icans",
    ]


@pytest.mark.parametrize(
    ("kind", "grade", "onset_hours", "match"),
    [
        ("fever", 2, 1, "not one of crs, icans"),
        ("crs", 0, 1, "grade must be 1 to 4"),
        ("icans", 5, 1, "grade must be 1 to 4"),
        ("crs", 2, -1, "cannot precede the infusion"),
    ],
)
def test_invalid_adverse_events_are_refused(
    app: InfusionApplication,
    verified: str,
    clock: Clock,
    kind: str,
    grade: int,
    onset_hours: int,
    match: str,
) -> None:
    app.administer_infusion(administration(verified), nurse(FIRST_NURSE))
    clock.advance(hours=2)
    onset = clock.now - timedelta(hours=2) + timedelta(hours=onset_hours)
    before = kinds(app)
    with pytest.raises(InvalidInput, match=match):
        app.record_adverse_event(AdverseEventReport(verified, kind, grade, onset), nurse())
    assert kinds(app) == before
