"""Slot booking through the port, and apheresis collections (only with a booked slot)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from v2v_intake.domain.therapy import Therapy
from v2v_intake.views import CollectionInput
from v2v_platform.errors import InvalidInput, NotFound, Refused
from v2v_testkit.intake import (
    NOW,
    build_intake,
    collection,
    enrolled,
    operator,
    reader,
    stored_events,
)


def test_a_booked_slot_is_recorded() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    slot = intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    assert slot == ("SLOT-GMP-B-1", "GMP-B", date(2025, 3, 20))
    assert intake.slots.booked == [(coi, "GMP-B", date(2025, 3, 20))]
    assert intake.app.get_patient(coi, reader("HOSP-A")).slots[0].slot_id == "SLOT-GMP-B-1"


def test_a_refused_booking_records_nothing() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    intake.slots.free = 0
    with pytest.raises(Refused, match="no free slot"):
        intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    assert intake.app.get_patient(coi, reader("HOSP-A")).slots == ()


def test_a_slot_in_the_past_is_refused() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    with pytest.raises(InvalidInput, match="slot_date 2025-03-13 is before the day of the booking"):
        intake.app.book_slot(coi, "GMP-B", date(2025, 3, 13), operator())
    assert intake.slots.booked == []


def test_a_booking_entered_after_the_fact_is_judged_on_when_it_was_made() -> None:
    """Issue 14: a slot booked (clinically) before the enrolment is refused naming booked_at;
    one booked a day after it, for a day now past, is kept with its time."""
    intake = build_intake()
    coi = enrolled(intake)  # enrolled a week before NOW
    early = NOW - timedelta(days=8)
    with pytest.raises(InvalidInput, match=r"booked_at .* is before the enrolment"):
        intake.app.book_slot(coi, "GMP-B", early.date(), operator(), booked_at=early)
    assert intake.slots.booked == []
    booked = NOW - timedelta(days=6)
    slot_day = (NOW - timedelta(days=3)).date()
    intake.app.book_slot(coi, "GMP-B", slot_day, operator(), booked_at=booked)
    assert [slot.slot_date for slot in intake.app.get_patient(coi, reader("HOSP-A")).slots] == [
        slot_day
    ]
    (booking,) = [e for e in stored_events(intake) if isinstance(e, Therapy.SlotBooked)]
    assert booking.booked_at == booked and booking.occurred_at == booked  # the envelope's time


def test_booking_for_an_unknown_coi_is_not_found() -> None:
    with pytest.raises(NotFound):
        build_intake().app.book_slot("CHA123425000099", "GMP-B", date(2025, 3, 20), operator())


def test_a_collection_without_a_booked_slot_is_refused() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    with pytest.raises(Refused, match="no manufacturing slot is booked"):
        intake.app.record_collection(coi, collection(), operator())


def test_a_collection_for_a_slot_not_booked_for_the_coi_is_refused() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    with pytest.raises(Refused, match="slot SLOT-OTHER is not booked"):
        intake.app.record_collection(coi, collection("SLOT-OTHER"), operator())


def test_collections_record_site_times_volume_counts_and_operator() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    first = intake.app.record_collection(coi, collection(), operator("u-7"))
    second = intake.app.record_collection(coi, collection(hours_ago=1), operator("u-8"))
    assert (first, second) == (f"{coi}-A01", f"{coi}-A02")
    recorded = intake.app.get_patient(coi, reader("HOSP-A")).collections
    assert recorded[0].collection_site_id == "HOSP-A"
    assert recorded[0].volume_ml == 212.5 and recorded[0].slot_id == "SLOT-GMP-B-1"
    assert stored_events(intake)[-1].actor["user_id"] == "u-8"


def _bad(**changes: object) -> CollectionInput:
    return replace(collection(), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_bad(ended_at=NOW - timedelta(hours=9)), "end must be after its start"),
        (_bad(volume_ml=0.0), "volume must be > 0"),
        (_bad(volume_ml=-5.0), "volume must be > 0"),
        (_bad(cd3_cells_e9=-1.0), "cannot be negative"),
        (_bad(cd3_cells_e9=20.0), "CD3\\+ cells cannot exceed"),
        (_bad(started_at=datetime(2025, 3, 14, 1, 0)), "time zone"),
        (
            _bad(started_at=NOW + timedelta(hours=1), ended_at=NOW + timedelta(hours=3)),
            "in the future",
        ),
    ],
)
def test_implausible_collections_are_refused(bad: CollectionInput, message: str) -> None:
    intake = build_intake()
    coi = enrolled(intake)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    with pytest.raises(InvalidInput, match=message):
        intake.app.record_collection(coi, bad, operator())
    assert intake.app.get_patient(coi, reader("HOSP-A")).collections == ()


def test_times_are_utc_aware() -> None:
    assert collection().ended_at.tzinfo is UTC
