"""A consumer's batch through the gate, its ledger and its quarantine (SQLite store, as a
service without PostgreSQL runs it): a poison record and forged records are quarantined once
and the consumer goes on; a stream keeps its author site across restarts; a released record
is verified again and applied first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.consumer import (
    ApplyStats,
    Delivered,
    InMemoryLedger,
    SqliteConsumerStore,
    apply_verified,
    checked_records,
)
from v2v_platform.envelope import (
    Actor,
    EnvelopeContent,
    EnvelopeGate,
    KeyRing,
    Location,
    SiteSigningKey,
    build_envelope,
    encode,
)

TOPIC = "v2v.release.events.v1"
COI = "CHA123425000017"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
QC1 = SiteSigningKey.generate("QC-1")
QC2 = SiteSigningKey.generate("QC-2")
HOSPITAL = SiteSigningKey.generate("HOSP-A")


def ring(*extra: SiteSigningKey) -> KeyRing:
    keys = KeyRing()
    for key in (QC1, QC2, *extra):
        keys.add(key.site_id, key.public_key, ["qc"])
    keys.add("HOSP-A", HOSPITAL.public_key, ["collection", "infusion"])
    return keys


GATE = EnvelopeGate(ring())


class Streams:
    """Chained envelopes per aggregate stream, as a relay seals them."""

    def __init__(self) -> None:
        self.heads: dict[str, tuple[int, bytes]] = {}

    def next(self, signer: SiteSigningKey, stream: str = "release-b-1") -> bytes:
        version, prev = self.heads.get(stream, (0, b""))
        content = EnvelopeContent(
            coi=COI,
            aggregate_type="BatchRelease",
            aggregate_id=stream,
            aggregate_version=version + 1,
            payload=release.FinallyCertified(coi=COI, batch_id="b-1"),
            schema_version=1,
            recorded_at=NOW,
            site_id=signer.site_id,
            actor=Actor("u-qp", "Quinn Person", "qp"),
        )
        envelope = build_envelope(content, prev, signer)
        self.heads[stream] = (version + 1, envelope.hash)
        return encode(envelope)


@dataclass
class Record:
    """What the consumer reads of a Kafka record."""

    offset: int
    value: bytes | None
    key: bytes | None = COI.encode()
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def polled(*values: bytes | None, first: int = 0) -> dict[TopicPartition, list[Any]]:
    records = [Record(first + i, value) for i, value in enumerate(values)]
    return {TopicPartition(TOPIC, 0): records}


class Tally:
    def __init__(self) -> None:
        self.applied: list[tuple[str, int, str]] = []

    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None:
        envelope = delivered.envelope
        self.applied.append((envelope.aggregate_id, envelope.aggregate_version, envelope.site_id))


@pytest.fixture
def store(tmp_path: Path) -> SqliteConsumerStore:
    return SqliteConsumerStore(tmp_path / "facts.sqlite", "test-facts")


def feed(
    store: SqliteConsumerStore,
    batch: dict[TopicPartition, list[Any]],
    tally: Tally,
    gate: EnvelopeGate = GATE,
) -> ApplyStats:
    with store.transaction() as (unit, ledger):
        return apply_verified(list(checked_records(batch, gate)), ledger, unit, tally, gate, NOW)


def quarantined(store: SqliteConsumerStore) -> dict[int, tuple[str, str, str]]:
    with store.transaction() as (_, ledger):
        rows = ledger.quarantine.records()
    return {row.location.offset: (row.reason, row.claimed_site, row.status) for row in rows}


def test_poison_and_forged_records_are_quarantined_and_the_next_is_applied(
    store: SqliteConsumerStore,
) -> None:
    streams, tally = Streams(), Tally()
    genuine = streams.next(QC1)
    forged = Streams().next(SiteSigningKey.generate("QC-1"), "release-b-9")
    unentitled = Streams().next(HOSPITAL, "release-b-8")
    after = streams.next(QC1)
    batch = polled(genuine, b"\x00\xffnot an envelope", forged, unentitled, None, after)
    stats = feed(store, batch, tally)
    assert (stats.applied, stats.quarantined) == (2, 4)
    assert tally.applied == [("release-b-1", 1, "QC-1"), ("release-b-1", 2, "QC-1")]
    assert quarantined(store) == {
        1: ("decode", "", "quarantined"),
        2: ("signature", "QC-1", "quarantined"),
        3: ("authorship", "HOSP-A", "quarantined"),
        4: ("decode", "", "quarantined"),
    }
    assert len(stats.quarantine_details) == 4
    where = "v2v.release.events.v1[0]@3"
    claims = f"(COI {COI}, claimed author HOSP-A)"
    assert stats.quarantine_details[2].startswith(f"authorship at {where} {claims}: site")


def test_a_redelivered_batch_changes_nothing_and_quarantines_once(
    store: SqliteConsumerStore,
) -> None:
    streams, tally = Streams(), Tally()
    batch = polled(streams.next(QC1), b"\x00\xffpoison")
    feed(store, batch, tally)
    again = feed(store, batch, tally)
    assert (again.applied, again.duplicates, again.quarantined) == (0, 1, 0)
    assert again.quarantine_details == []  # logged once, when first quarantined
    assert len(quarantined(store)) == 1
    assert len(tally.applied) == 1


def test_a_stream_re_authored_by_another_site_is_refused_even_after_a_restart(
    tmp_path: Path,
) -> None:
    streams, tally = Streams(), Tally()
    path = tmp_path / "facts.sqlite"
    first = SqliteConsumerStore(path, "test-facts")
    feed(first, polled(streams.next(QC1)), tally)
    first.connection.close()
    reopened = SqliteConsumerStore(path, "test-facts")
    stats = feed(reopened, polled(streams.next(QC2), first=1), tally)
    assert (stats.applied, stats.quarantined) == (0, 1)
    assert quarantined(reopened) == {1: ("stream_author", "QC-2", "quarantined")}
    assert tally.applied == [("release-b-1", 1, "QC-1")]


def test_a_version_already_applied_by_another_site_is_not_a_duplicate_but_refused() -> None:
    ledger, tally = InMemoryLedger(), Tally()
    mine, theirs = Streams(), Streams()
    checked = list(checked_records(polled(mine.next(QC1)), GATE))
    apply_verified(checked, ledger, None, tally, GATE, NOW)
    replayed = list(checked_records(polled(theirs.next(QC2), first=1), GATE))
    stats = apply_verified(replayed, ledger, None, tally, GATE, NOW)
    assert (stats.duplicates, stats.quarantined) == (0, 1)
    assert ledger.pinned == {"release-b-1": "QC-1"}


def test_within_one_batch_the_first_envelope_of_a_stream_pins_its_author(
    store: SqliteConsumerStore,
) -> None:
    mine, tally = Streams(), Tally()
    stats = feed(store, polled(mine.next(QC1), mine.next(QC2)), tally)
    assert (stats.applied, stats.quarantined) == (1, 1)
    assert quarantined(store) == {1: ("stream_author", "QC-2", "quarantined")}


def _release(store: SqliteConsumerStore, offset: int) -> None:
    with store.transaction() as (_, ledger):
        assert ledger.quarantine.release(Location(TOPIC, 0, offset), NOW)


def test_a_released_record_is_verified_again_and_applied_before_new_ones(
    store: SqliteConsumerStore,
) -> None:
    rotated = SiteSigningKey.generate("QC-1")  # QC-1's new key, not yet in the ring
    streams, tally = Streams(), Tally()
    feed(store, polled(streams.next(rotated)), tally)
    assert quarantined(store) == {0: ("signature", "QC-1", "quarantined")}
    fixed = EnvelopeGate(ring(rotated))
    _release(store, 0)
    stats = feed(store, polled(streams.next(rotated), first=1), tally, fixed)
    assert (stats.applied, stats.released, stats.gaps) == (2, 1, 0)
    assert tally.applied == [("release-b-1", 1, "QC-1"), ("release-b-1", 2, "QC-1")]
    assert quarantined(store) == {0: ("signature", "QC-1", "applied")}


def test_a_released_record_behind_its_stream_is_superseded_not_applied(
    store: SqliteConsumerStore,
) -> None:
    rotated = SiteSigningKey.generate("QC-1")
    streams, tally = Streams(), Tally()
    feed(store, polled(streams.next(rotated), streams.next(QC1)), tally)  # v1 refused, v2 taken
    assert tally.applied == [("release-b-1", 2, "QC-1")]
    _release(store, 0)
    stats = feed(store, polled(), tally, EnvelopeGate(ring(rotated)))
    assert (stats.applied, stats.released, stats.duplicates) == (0, 0, 1)
    assert (
        "not applied: its stream release-b-1 was already applied at or past version 1"
        in (stats.quarantine_details[0])
    )
    assert quarantined(store) == {0: ("signature", "QC-1", "superseded")}
    assert tally.applied == [("release-b-1", 2, "QC-1")]


def test_a_released_record_that_still_fails_goes_back_with_its_reasons(
    store: SqliteConsumerStore,
) -> None:
    tally = Tally()
    feed(store, polled(Streams().next(SiteSigningKey.generate("QC-1"))), tally)
    _release(store, 0)
    stats = feed(store, polled(), tally)
    assert (stats.applied, stats.released, stats.quarantined) == (0, 0, 0)
    assert "released record still untrusted: signature" in stats.quarantine_details[0]
    assert quarantined(store) == {0: ("signature", "QC-1", "quarantined")}
    assert tally.applied == []


def test_quarantine_rows_roll_back_with_the_batch(store: SqliteConsumerStore) -> None:
    def failing(unit_of_work: Any, delivered: Delivered) -> None:
        raise RuntimeError("the database went away")

    streams = Streams()
    batch = polled(b"\x00\xffpoison", streams.next(QC1))
    with pytest.raises(RuntimeError), store.transaction() as (unit, ledger):
        apply_verified(list(checked_records(batch, GATE)), ledger, unit, failing, GATE, NOW)
    assert quarantined(store) == {}
    stats = feed(store, batch, Tally())
    assert (stats.applied, stats.quarantined) == (1, 1)


def test_checked_records_carry_the_raw_bytes_and_headers() -> None:
    raw = Streams().next(QC1)
    batch = {TopicPartition(TOPIC, 3): [Record(7, raw, headers=[("traceparent", b"00-x")])]}
    [delivered] = list(checked_records(batch, GATE))
    assert isinstance(delivered, Delivered)
    assert (delivered.raw, delivered.location) == (raw, Location(TOPIC, 3, 7))
    assert delivered.headers == [("traceparent", b"00-x")]
    assert delivered.envelope.site_id == "QC-1"
