"""Enrolment and labelling in clinical time (issue 14, docs/kpis.md): the enrolment time of
enrolment-to-collection is the published `PatientEnrolled.enrolled_at`, and a unit's labelling
(its creation and the collection site's claim of custody) the published
`UnitLabelled.labelled_at`; events without them fall back to the envelope's `occurred_at`
(for intake's events: when they were recorded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.intake.events.v1 import events_pb2 as intake
from v2v_platform.ids import issue_coi, issue_din
from v2v_projection.fold import ChainFold
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

TODAY = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # when every fact is recorded, seconds apart
COLLECTION_START = TODAY - timedelta(days=3)
ENROLLED = COLLECTION_START - timedelta(days=5)
COLLECTION_END = COLLECTION_START + timedelta(hours=4)
LABELLED = COLLECTION_END + timedelta(minutes=20)
SITE = "HOSP-A"
COI = issue_coi("A1234", 25, 7).value
BAG = str(issue_din("A1234", 25, 701))


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def recorded_today(payloads: list[Message]) -> list[bytes]:
    """The payloads as intake publishes them: envelopes recorded today, seconds apart, with no
    `occurred_at` of their own (the envelope's `occurred_at` is the recorded time)."""
    writer = EnvelopeWriter()
    return [
        writer.write(COI, f"Therapy:{COI}", payload, TODAY + timedelta(seconds=n), site=SITE)
        for n, payload in enumerate(payloads)
    ]


def enrolment(enrolled_at: datetime | None) -> intake.PatientEnrolled:
    event = intake.PatientEnrolled(
        coi=COI, patient_pseudonym="PSN-7", enrolling_site_id=SITE, treating_site_id=SITE
    )
    if enrolled_at is not None:
        event.enrolled_at.CopyFrom(stamp(enrolled_at))
    return event


def collection_and_label(labelled_at: datetime | None) -> list[Message]:
    collected = intake.CollectionRecorded(
        coi=COI,
        collection_id=f"{COI}-A01",
        collection_site_id=SITE,
        started_at=stamp(COLLECTION_START),
        ended_at=stamp(COLLECTION_END),
    )
    label = intake.UnitLabelled(
        coi=COI, collection_id=f"{COI}-A01", din=BAG, unit_kind="apheresis-bag"
    )
    if labelled_at is not None:
        label.labelled_at.CopyFrom(stamp(labelled_at))
    return [collected, label]


def chain_view(records: list[bytes]) -> dict[str, Any]:
    fold = ChainFold()
    fold.apply_all(records)
    view = fold.chain(COI)
    assert view is not None
    return view


def test_enrolment_to_collection_counts_from_the_clinical_enrolment() -> None:
    view = chain_view(recorded_today([enrolment(ENROLLED), *collection_and_label(LABELLED)]))
    kpis = view["kpis"]
    assert kpis["stage_hours"]["enrolment_to_collection"] == 5 * 24.0
    assert kpis["excluded_intervals"] == []


def test_an_enrolment_without_its_time_counts_from_the_envelope() -> None:
    """Enrolments published before `enrolled_at` existed: the envelope's time (recorded today,
    after the collection) is all there is, and the impossible interval is a finding."""
    view = chain_view(recorded_today([enrolment(None), *collection_and_label(None)]))
    kpis = view["kpis"]
    assert kpis["stage_hours"]["enrolment_to_collection"] is None
    assert [finding["kpi"] for finding in kpis["excluded_intervals"]] == ["enrolment_to_collection"]


def test_a_unit_is_created_and_claimed_when_it_was_labelled() -> None:
    view = chain_view(recorded_today([enrolment(ENROLLED), *collection_and_label(LABELLED)]))
    [bag] = view["units"]
    assert bag["din"] == BAG and bag["created_at"] == LABELLED.isoformat()
    assert bag["custody"][0]["custodian"] == f"site:{SITE}"
    assert bag["custody"][0]["from"] == LABELLED.isoformat()


def test_a_label_without_its_time_is_created_when_the_envelope_says() -> None:
    records = recorded_today([enrolment(None), *collection_and_label(None)])
    [bag] = chain_view(records)["units"]
    assert bag["created_at"] == (TODAY + timedelta(seconds=2)).isoformat()
