"""The fold's hot path: dedupe by (aggregate, version), parking, as_of, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from v2v.intake.events.v1 import events_pb2 as intake
from v2v_projection.chain.alerts import UntrustedMark
from v2v_projection.fold import ChainFold, UndecodableEnvelope
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI = "CHA123425000017"
THERAPY = "Therapy:1"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def therapy_events(writer: EnvelopeWriter) -> list[bytes]:
    enrolled = intake.PatientEnrolled(
        coi=COI, patient_pseudonym="PSN-1", enrolling_site_id="HOSP-A", treating_site_id="HOSP-A"
    )
    booked = intake.SlotBooked(
        coi=COI, manufacturing_site_id="GMP-B", slot_id="SLOT-1", slot_date="2025-03-04"
    )
    collected = intake.CollectionRecorded(
        coi=COI, collection_id="c-1", collection_site_id="HOSP-A", volume_ml=200
    )
    collected.started_at.FromDatetime(T0 + timedelta(hours=20))
    collected.ended_at.FromDatetime(T0 + timedelta(hours=24))
    return [
        writer.write(COI, THERAPY, enrolled, T0),
        writer.write(COI, THERAPY, booked, T0 + timedelta(hours=1)),
        writer.write(COI, THERAPY, collected, T0 + timedelta(hours=24)),
    ]


def fold_of(records: list[bytes], as_of: datetime | None = None) -> ChainFold:
    fold = ChainFold(as_of)
    for record in records:
        fold.apply_bytes(record)
    return fold


def test_a_redelivered_event_is_skipped_and_counted() -> None:
    first, second, third = therapy_events(EnvelopeWriter())

    fold = fold_of([first, second, first, second, third, third])

    assert (fold.events_applied, fold.duplicates_skipped) == (3, 3)
    assert fold.chain(COI)["stage"] == "collection"  # type: ignore[index]


def test_a_version_ahead_of_its_predecessor_is_parked_until_it_arrives() -> None:
    first, second, third = therapy_events(EnvelopeWriter())
    fold = fold_of([first, third])

    parked = fold.chain(COI)
    assert (fold.events_applied, fold.events_parked) == (1, 1)
    assert parked is not None and parked["stage"] == "enrolled"
    gap = [a for a in parked["alerts"] if a["kind"] == "integrity-break"]
    assert len(gap) == 1 and "version 2 is missing" in gap[0]["detail"]

    fold.apply_bytes(second)
    healed = fold.chain(COI)
    assert (fold.events_applied, fold.events_parked) == (3, 0)
    assert healed is not None and healed["stage"] == "collection"
    assert healed["alerts"] == []


def test_a_parked_duplicate_is_skipped() -> None:
    first, _, third = therapy_events(EnvelopeWriter())

    fold = fold_of([third, third, first])

    assert (fold.events_parked, fold.duplicates_skipped) == (1, 1)


def test_as_of_ignores_events_recorded_after_that_time() -> None:
    records = therapy_events(EnvelopeWriter())

    fold = fold_of(records, as_of=T0 + timedelta(hours=2))

    view = fold.chain(COI)
    assert view is not None and view["stage"] == "enrolled"
    assert (fold.events_applied, fold.events_after_as_of) == (2, 1)
    assert view["updated_at"] == (T0 + timedelta(hours=1)).isoformat()


def test_as_of_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        ChainFold(datetime(2025, 3, 1))


def test_bytes_that_are_not_an_envelope_are_refused_with_a_clear_error() -> None:
    with pytest.raises(UndecodableEnvelope, match="not a v2v envelope"):
        ChainFold().apply_bytes(b"\xff\xff\xff garbage")


def test_an_unknown_coi_has_no_chain_and_views_are_cached_until_a_change() -> None:
    first, second, _ = therapy_events(EnvelopeWriter())
    fold = fold_of([first])
    assert fold.chain("CHZ999925999999") is None

    view = fold.chain(COI)
    assert fold.chain(COI) is view
    fold.apply_bytes(second)
    assert fold.chain(COI) is not view
    assert fold.take_changed() == {COI}
    assert fold.take_changed() == set()


def test_a_stream_keeps_the_author_site_of_its_first_envelope() -> None:
    hospital, other = EnvelopeWriter(), EnvelopeWriter()
    first, second, _ = therapy_events(hospital)
    by_another = other.write(COI, THERAPY, intake.PatientEnrolled(coi=COI), T0, site="HOSP-C")
    by_another_v2 = other.write(COI, THERAPY, intake.PatientEnrolled(coi=COI), T0, site="HOSP-C")
    fold = fold_of([first])

    assert fold.apply_bytes(by_another_v2) == "HOSP-A"  # the version after the taken one
    assert fold.apply_bytes(by_another) == "HOSP-A"  # the version already taken
    assert fold.apply_bytes(second) is None
    assert (fold.events_applied, fold.wrong_authors, fold.duplicates_skipped) == (2, 2, 0)


def test_a_distrusted_record_is_an_alert_of_its_chain_once_the_chain_exists() -> None:
    first, _, _ = therapy_events(EnvelopeWriter())
    fold = ChainFold()
    mark = UntrustedMark("v2v.release.events.v1[0]@5", 1_000, "untrusted record at ...", "e-1")
    assert fold.distrust(COI, mark) and not fold.distrust(COI, mark)
    assert fold.chain(COI) is None  # no verified fact: no chain

    fold.apply_bytes(first)

    view = fold.chain(COI)
    assert view is not None
    assert [(a["kind"], a["event_id"]) for a in view["alerts"]] == [("untrusted-record", "e-1")]
