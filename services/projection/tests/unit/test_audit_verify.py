"""The verify core on small hand-built histories: each check finds what it is for."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from v2v.intake.events.v1 import events_pb2 as intake
from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.envelope.authorship import AUTHORSHIP
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope, decode, encode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.envelope.verify import (
    CHECK_AUTHORSHIP,
    CHECK_DECODE,
    CHECK_EVENT_TYPE,
    CHECK_STREAM_AUTHOR,
    CHECK_VERSION_GAP,
)
from v2v_projection.audit.sources import partition_for
from v2v_projection.audit.verification import (
    CHECK_ENCODING,
    CHECK_EXTENT,
    CHECK_FILE,
    CHECK_OFFSET,
    CHECK_OPEN_GAP,
    CHECK_PARTITION,
    authorship_for,
    describe,
    verify_history,
)
from v2v_projection.history_file import (
    Extent,
    HistoryHeader,
    HistoryRecord,
    read_history,
    write_history,
)
from v2v_testkit.audit import partitioned

TOPIC = "v2v.intake.events.v1"
SIGNER = SiteSigningKey.from_seed("HOSP-A", bytes(range(32)))
RING = KeyRing()
RING.add(SIGNER.site_id, SIGNER.public_key, ["collection", "infusion"])
QC_LAB = SiteSigningKey.from_seed("QC-1", bytes(range(1, 33)))
RING.add(QC_LAB.site_id, QC_LAB.public_key, ["qc"])
RELEASE_TOPIC = "v2v.release.events.v1"
COIS = ("CHA123425000017", "CHA123425000025", "CHA123425000033", "CHA123425000041")
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _stream(coi: str, versions: int) -> list[bytes]:
    values, prev_hash = [], b""
    for version in range(1, versions + 1):
        payload = intake.CollectionRecorded(coi=coi, collection_id=f"c-{version}")
        content = EnvelopeContent(
            coi=coi,
            aggregate_type="Therapy",
            aggregate_id=f"therapy-{coi}",
            aggregate_version=version,
            payload=payload,
            schema_version=1,
            recorded_at=START + timedelta(minutes=version),
            site_id=SIGNER.site_id,
            actor=Actor("u-1", "Nurse Ada", "collection"),
        )
        envelope = build_envelope(content, prev_hash, SIGNER)
        prev_hash = envelope.hash
        values.append(encode(envelope))
    return values


def _history() -> tuple[HistoryHeader, list[HistoryRecord]]:
    return partitioned({TOPIC: [v for coi in COIS for v in _stream(coi, 4)]}, partitions=2)


def _checks(header: HistoryHeader, records: list[HistoryRecord]) -> list[str]:
    return [b.check for b in verify_history(header, records, RING).breaks]


def test_an_untouched_history_is_clean_and_counted() -> None:
    header, records = _history()
    outcome = verify_history(header, records, RING)
    assert outcome.clean
    assert (outcome.records, outcome.aggregates, outcome.duplicates) == (16, 4, 0)
    assert outcome.summary() == (
        "16 records, 4 aggregates, 0 duplicates, 0 breaks;"
        " 16 signatures checked, 0 events covered by checkpoints"
    )


def test_a_redelivered_record_is_a_duplicate_not_a_break() -> None:
    header, records = _history()
    extent = header.extents[0]
    copy = next(r for r in records if (r.topic, r.partition) == (extent.topic, extent.partition))
    records.append(replace(copy, offset=extent.end))
    header.extents[0] = replace(extent, end=extent.end + 1)
    outcome = verify_history(header, records, RING)
    assert outcome.clean and outcome.duplicates == 1


def test_a_missing_offset_is_an_offset_break_naming_the_record_after_it() -> None:
    header, records = _history()
    del records[1]
    breaks = verify_history(header, records, RING).breaks
    offset_breaks = [b for b in breaks if b.check == CHECK_OFFSET]
    assert len(offset_breaks) == 1
    assert "expected offset 1 after the previous record, got 2" in str(offset_breaks[0])
    assert offset_breaks[0].aggregate_id.startswith("therapy-")


def test_a_truncated_partition_is_found_at_the_end() -> None:
    header, records = _history()
    last = max(range(len(records)), key=lambda i: (records[i].partition, records[i].offset))
    del records[last]
    breaks = verify_history(header, records, RING).breaks
    assert CHECK_OFFSET in [b.check for b in breaks]
    assert any("records end at offset" in b.detail for b in breaks)


def test_records_outside_the_extents_are_breaks() -> None:
    header, records = _history()
    records.append(HistoryRecord("v2v.other.events.v1", 0, 0, records[0].value))
    records.append(replace(records[0], offset=99))
    assert _checks(header, records).count(CHECK_EXTENT) == 2


def test_a_record_in_the_wrong_partition_for_its_coi() -> None:
    header, records = _history()
    moved = records[0]
    coi = decode(moved.value).coi
    wrong = 1 - partition_for(coi, 2)
    end = next(e.end for e in header.extents if e.partition == wrong)
    header.extents = [
        replace(e, end=e.end + 1) if e.partition == wrong else e for e in header.extents
    ]
    records.append(HistoryRecord(TOPIC, wrong, end, moved.value))
    found = verify_history(header, records, RING).breaks
    assert [b.check for b in found] == [CHECK_PARTITION]
    assert f"COI {coi} is keyed to partition {1 - wrong} of 2" in found[0].detail


def test_a_non_canonical_encoding_is_found_even_when_it_decodes_the_same() -> None:
    header, records = _history()
    value = records[0].value
    records[0] = replace(records[0], value=value + _event_id_again(value))
    assert _checks(header, records) == [CHECK_ENCODING]


def _event_id_again(value: bytes) -> bytes:
    """Field 1 (event_id) repeated with the same value: proto3 keeps the last, same envelope."""
    event_id = decode(value).event_id.encode()
    return b"\x0a" + bytes([len(event_id)]) + event_id


def test_undecodable_bytes_are_a_decode_break() -> None:
    header, records = _history()
    records[0] = replace(records[0], value=b"\xff\xff\xff")
    assert _checks(header, records)[0] == CHECK_DECODE


def test_a_version_that_never_arrives_is_an_open_gap_at_the_end() -> None:
    values = _stream(COIS[0], 4)
    header, records = partitioned({TOPIC: [values[0], values[2], values[3]]}, partitions=1)
    found = verify_history(header, records, RING).breaks
    assert [b.check for b in found] == [CHECK_VERSION_GAP, CHECK_OPEN_GAP]
    assert found[-1].version == 4
    assert "versions 2 never arrived" in found[-1].detail


def test_a_garbled_file_is_reported_after_the_records_before_it(tmp_path: Path) -> None:
    header, records = _history()
    path = tmp_path / "history.v2v"
    write_history(path, header, records)
    path.write_bytes(path.read_bytes()[:-10])
    read_header, read_records = read_history(path)
    outcome = verify_history(read_header, read_records, RING)
    assert outcome.records == len(records) - 1
    assert outcome.breaks[0].check == CHECK_FILE
    assert describe(outcome.breaks[0]).startswith("file: garbled record at byte ")


def test_an_empty_partition_extent_needs_no_records() -> None:
    header = HistoryHeader("2025-01-01T00:00:00+00:00", "test", [Extent(TOPIC, 0, 5, 5)])
    assert verify_history(header, [], RING).clean


def test_every_break_names_its_location_and_aggregate() -> None:
    header, records = _history()
    first, second = (i for i, r in enumerate(records) if r.partition == 0 and r.offset in (1, 2))
    records[first], records[second] = records[second], records[first]
    text = [describe(b) for b in verify_history(header, records, RING).breaks]
    assert text
    assert all(f"{TOPIC}[" in line and "aggregate therapy-" in line for line in text)


def _certified(signer: SiteSigningKey, coi: str = COIS[0]) -> bytes:
    content = EnvelopeContent(
        coi=coi,
        aggregate_type="BatchRelease",
        aggregate_id=f"release-{coi}",
        aggregate_version=1,
        payload=release.FinallyCertified(coi=coi, batch_id="b-1"),
        schema_version=1,
        recorded_at=START + timedelta(hours=5),
        site_id=signer.site_id,
        actor=Actor("u-qp", "Quinn Person", "qp"),
    )
    return encode(build_envelope(content, b"", signer))


def _with(topic: str, value: bytes) -> tuple[HistoryHeader, list[HistoryRecord]]:
    by_topic = {TOPIC: [v for coi in COIS for v in _stream(coi, 2)]}
    by_topic.setdefault(topic, []).append(value)
    return partitioned(by_topic, partitions=2)


def test_a_release_decision_by_the_qc_lab_on_the_release_topic_is_clean() -> None:
    header, records = _with(RELEASE_TOPIC, _certified(QC_LAB))
    assert verify_history(header, records, RING).clean


def test_a_release_decision_signed_by_a_site_without_the_qc_role_is_a_break() -> None:
    header, records = _with(RELEASE_TOPIC, _certified(SIGNER))  # the hospital's own key
    found = verify_history(header, records, RING).breaks
    assert [b.check for b in found] == [CHECK_AUTHORSHIP]
    assert "site 'HOSP-A' (roles: collection, infusion) may not author release" in found[0].detail
    assert found[0].location.topic == RELEASE_TOPIC


def test_a_release_decision_put_on_another_topic_is_a_break() -> None:
    header, records = _with(TOPIC, _certified(QC_LAB))  # on the intake topic
    checks = [b.check for b in verify_history(header, records, RING).breaks]
    assert checks == [CHECK_EVENT_TYPE, CHECK_AUTHORSHIP]


def test_a_stream_continued_by_another_entitled_site_is_a_break() -> None:
    other = SiteSigningKey.from_seed("HOSP-C", bytes(range(2, 34)))
    ring = KeyRing()
    ring.add(SIGNER.site_id, SIGNER.public_key, ["collection"])
    ring.add(other.site_id, other.public_key, ["collection"])
    first = decode(_stream(COIS[0], 1)[0])
    content = EnvelopeContent(
        coi=COIS[0],
        aggregate_type="Therapy",
        aggregate_id=first.aggregate_id,
        aggregate_version=2,
        payload=intake.CollectionRecorded(coi=COIS[0], collection_id="c-2"),
        schema_version=1,
        recorded_at=START + timedelta(hours=1),
        site_id=other.site_id,
        actor=Actor("u-2", "Nurse Ben", "collection"),
    )
    second = encode(build_envelope(content, first.hash, other))
    header, records = partitioned({TOPIC: [encode(first), second]}, partitions=1)
    assert [b.check for b in verify_history(header, records, ring).breaks] == [CHECK_STREAM_AUTHOR]


def test_copies_of_the_topics_under_other_names_keep_their_contexts_rules() -> None:
    copy = "v2v.audit-1a2b-release.events.v1"
    header, records = _with(copy, _certified(SIGNER))  # a hospital's release decision
    assert [b.check for b in verify_history(header, records, RING).breaks] == [CHECK_AUTHORSHIP]
    header, records = _with(copy, _certified(QC_LAB))
    assert verify_history(header, records, RING).clean
    policy = authorship_for([copy, "bench-9.v2v.intake.events.v1", "v2v.logbook.events.v1"])
    assert policy.context_of(copy) == "release"
    assert policy.context_of("bench-9.v2v.intake.events.v1") == "intake"
    assert policy.context_of("v2v.logbook.events.v1") is None
    assert authorship_for([TOPIC, RELEASE_TOPIC]) is AUTHORSHIP
