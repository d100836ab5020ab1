"""COI and DIN numbers are reserved in runs (issue 18 item 2): one register write reserves
`reservation_size` numbers, handed out from memory; numbers are never issued twice, by threads
or by several instances sharing the store, nor across a restart (which goes on after the last
reservation: the unused rest of a run is a gap); DINs stay inside the declared block."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from math import ceil
from pathlib import Path

import pytest

from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.application import IntakeApplication
from v2v_intake.domain.registers import MAX_SEQUENCE, SequenceRegister, sequence_register_id
from v2v_intake.settings import IntakeSettings
from v2v_intake.unpublished_records import DEFAULT_RESERVATION_SIZE, IntakeUnpublishedRecords
from v2v_platform.din_allocation import DinBlock, DinBlockExhausted
from v2v_platform.errors import Conflict
from v2v_platform.ids import Coi
from v2v_testkit.intake import (
    DETAILS,
    ENROLLED_AT,
    FIN,
    POPO,
    SITE,
    FixedClock,
    declare_din_block,
    din_block,
    operator,
)

YEAR = 25


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def register_of(records: IntakeUnpublishedRecords, kind: str) -> SequenceRegister:
    register = records.find(SequenceRegister, sequence_register_id(kind, FIN, YEAR))
    assert register is not None
    return register


def intake_instance(
    events_env: dict[str, str],
    registers_env: dict[str, str],
    size: int,
    block: DinBlock | None = None,
) -> IntakeApplication:
    """One intake process's application and unpublished records on the given stores."""
    unpublished = IntakeUnpublishedRecords(
        env=registers_env, din_block=block or din_block(), reservation_size=size
    )
    return IntakeApplication(
        env=events_env,
        site_id=SITE,
        unpublished=unpublished,
        clock=FixedClock(),
        fin=FIN,
        keys=InMemoryKeyStore(),
    )


def test_a_run_of_numbers_is_one_register_write() -> None:
    records = IntakeUnpublishedRecords(env=POPO, reservation_size=50)
    numbers = [n for _ in range(120) for n in records.issue_numbers("COI", FIN, YEAR)]
    assert numbers == list(range(1, 121))
    register = register_of(records, "COI")
    assert register.version == 1 + 3  # started, then three runs of 50
    assert register.last == 150


def test_reservation_size_one_writes_the_register_for_every_number() -> None:
    """Today's behaviour, kept as a setting."""
    records = IntakeUnpublishedRecords(env=POPO, reservation_size=1)
    assert [records.issue_numbers("COI", FIN, YEAR)[0] for _ in range(5)] == [1, 2, 3, 4, 5]
    assert register_of(records, "COI").version == 1 + 5
    assert register_of(records, "COI").last == 5


def test_the_reservation_size_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    declare_din_block(tmp_path)
    settings = IntakeSettings(site_id=SITE, fin=FIN, pki_dir=tmp_path, manufacturing_target="x:1")
    assert settings.number_reservation_size == DEFAULT_RESERVATION_SIZE == 50
    monkeypatch.setenv("V2V_NUMBER_RESERVATION_SIZE", "7")
    from_env = IntakeSettings(site_id=SITE, fin=FIN, pki_dir=tmp_path, manufacturing_target="x:1")
    assert from_env.number_reservation_size == 7
    monkeypatch.delenv("V2V_NUMBER_RESERVATION_SIZE")
    assert (
        IntakeSettings(
            site_id=SITE,
            fin=FIN,
            pki_dir=tmp_path,
            manufacturing_target="x:1",
            number_reservation_size=1,
        ).number_reservation_size
        == 1
    )
    with pytest.raises(ValueError, match="number_reservation_size"):
        IntakeSettings(
            site_id=SITE,
            fin=FIN,
            pki_dir=tmp_path,
            manufacturing_target="x:1",
            number_reservation_size=0,
        )


def test_a_restart_continues_after_the_last_reservation(tmp_path: Path) -> None:
    """The unused rest of a run is a gap, never issued again; an older store (written one
    number at a time) goes on from its last number."""
    env = sqlite_env(tmp_path / "r.db")
    block = din_block(first=200, last=999)
    old = IntakeUnpublishedRecords(env=env, din_block=block, reservation_size=1)
    assert old.issue_numbers("COI", FIN, YEAR) == [1]
    assert old.issue_dins(FIN, YEAR, 2) == [200, 201]
    old.close()
    records = IntakeUnpublishedRecords(env=env, din_block=block, reservation_size=50)
    assert records.issue_numbers("COI", FIN, YEAR) == [2]
    assert records.issue_dins(FIN, YEAR, 2) == [202, 203]
    records.close()
    restarted = IntakeUnpublishedRecords(env=env, din_block=block, reservation_size=50)
    assert restarted.issue_numbers("COI", FIN, YEAR) == [52]
    assert restarted.issue_dins(FIN, YEAR, 1) == [252]
    restarted.close()


def test_a_run_stays_inside_the_din_block_and_exhaustion_is_still_refused() -> None:
    records = IntakeUnpublishedRecords(
        env=POPO, din_block=din_block(first=10, last=20), reservation_size=50
    )
    assert records.issue_dins(FIN, YEAR, 4) == [10, 11, 12, 13]
    assert register_of(records, "DIN").last == 20  # the run stops at the block's end
    assert records.issue_dins(FIN, YEAR, 5) == [14, 15, 16, 17, 18]
    with pytest.raises(DinBlockExhausted, match="exhausted: 3 DIN\\(s\\) asked, 2 left after 18"):
        records.issue_dins(FIN, YEAR, 3)
    assert records.issue_dins(FIN, YEAR, 2) == [19, 20]
    with pytest.raises(DinBlockExhausted, match="1 DIN\\(s\\) asked, 0 left after 20"):
        records.issue_dins(FIN, YEAR, 1)


def test_a_din_run_starts_at_the_start_of_the_block() -> None:
    records = IntakeUnpublishedRecords(
        env=POPO, din_block=din_block(first=4_000, last=4_999), reservation_size=50
    )
    assert records.issue_dins(FIN, YEAR, 3) == [4_000, 4_001, 4_002]
    assert register_of(records, "DIN").last == 4_049
    assert records.issue_dins(FIN, YEAR, 47) == list(range(4_003, 4_050))
    assert register_of(records, "DIN").version == 1 + 1


def test_a_run_too_short_for_the_dins_asked_goes_on_without_a_gap() -> None:
    records = IntakeUnpublishedRecords(env=POPO, din_block=din_block(), reservation_size=5)
    assert records.issue_dins(FIN, YEAR, 3) == [1, 2, 3]
    assert records.issue_dins(FIN, YEAR, 4) == [4, 5, 6, 7]  # 4-5 of the run, then 6-7 after it
    assert records.issue_dins(FIN, YEAR, 12) == list(range(8, 20))  # more than a run
    assert register_of(records, "DIN").last == 19


def test_a_run_stops_at_the_last_coi_number_and_exhaustion_is_still_refused() -> None:
    records = IntakeUnpublishedRecords(env=POPO, reservation_size=50)
    register = SequenceRegister.start("COI", FIN, YEAR)
    register.reserve(1, MAX_SEQUENCE - 3)
    records.save(register)
    assert [records.issue_numbers("COI", FIN, YEAR)[0] for _ in range(3)] == [
        MAX_SEQUENCE - 2,
        MAX_SEQUENCE - 1,
        MAX_SEQUENCE,
    ]
    assert register_of(records, "COI").last == MAX_SEQUENCE
    with pytest.raises(Conflict, match="COI sequence numbers for A1234 in year 25 are exhausted"):
        records.issue_numbers("COI", FIN, YEAR)


def test_threads_of_two_instances_sharing_one_sqlite_store_enrol_with_distinct_cois(
    tmp_path: Path,
) -> None:
    """Two intake processes (application + unpublished records each) on one store, eight
    threads each: every enrolment gets its own COI, none is refused or conflicts, and the COI
    register is written once per run, not once per enrolment."""
    events, registers = sqlite_env(tmp_path / "e.db"), sqlite_env(tmp_path / "r.db")
    size, per_thread, threads = 50, 20, 8
    instances = [intake_instance(events, registers, size) for _ in range(2)]
    start = threading.Barrier(threads * 2)

    def enrol(job: tuple[int, int]) -> list[str]:
        which, thread = job
        start.wait()
        app = instances[which]
        return [
            app.enrol_patient(f"PSN-{which}-{thread}-{n}", DETAILS, SITE, operator(), ENROLLED_AT)
            for n in range(per_thread)
        ]

    jobs = [(which, thread) for which in range(2) for thread in range(threads)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        cois = [coi for batch in pool.map(enrol, jobs) for coi in batch]
    total = 2 * threads * per_thread
    assert len(cois) == total
    assert len(set(cois)) == total
    assert all(Coi.parse(coi).value == coi for coi in cois)
    register = register_of(instances[0].unpublished, "COI")
    assert register.version <= 1 + ceil(total / size) + 2  # at most one run left part-used each
    for app in instances:
        app.unpublished.close()
        app.close()


def test_threads_of_two_instances_issue_distinct_dins_until_the_block_is_exhausted(
    tmp_path: Path,
) -> None:
    block = din_block(first=1_000, last=1_299)
    registers = sqlite_env(tmp_path / "r.db")
    instances = [
        IntakeUnpublishedRecords(env=registers, din_block=block, reservation_size=20)
        for _ in range(2)
    ]
    start = threading.Barrier(8)

    def label(job: tuple[int, int]) -> list[int]:
        which, thread = job
        start.wait()
        issued: list[int] = []
        for n in range(1_000):
            try:
                issued += instances[which].issue_dins(FIN, YEAR, 1 + (n + thread) % 3)
            except DinBlockExhausted:
                if (n + thread) % 3 == 0:  # not even one DIN left here: stop
                    return issued
        raise AssertionError("the block was never exhausted")

    jobs = [(which, thread) for which in range(2) for thread in range(4)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        dins = [din for batch in pool.map(label, jobs) for din in batch]
    assert len(dins) == len(set(dins))
    assert all(block.first <= din <= block.last for din in dins)
    register = register_of(instances[0], "DIN")
    assert register.last == block.last
    reservations = register.version - 1
    assert len(dins) >= block.size - 2 * reservations  # a run's rest too short for a label is lost
    for records in instances:
        with pytest.raises(DinBlockExhausted):
            for _ in range(block.size):
                records.issue_dins(FIN, YEAR, 1)
        records.close()
