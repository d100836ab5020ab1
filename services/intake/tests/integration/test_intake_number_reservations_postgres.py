"""Runs of COI and DIN numbers on PostgreSQL (issue 18 item 2): two intake processes'
applications and unpublished records sharing one database (as replicas of a service do),
several threads each, enrol hundreds of patients and number DINs until the block is used up:
every number distinct, DINs inside the block, no refusal or Conflict to a caller, the register
written once per run; a restart continues after the last reservation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from math import ceil
from typing import Any

import pytest

from v2v_intake.adapters.key_store import PostgresKeyStore
from v2v_intake.application import IntakeApplication
from v2v_intake.domain.registers import SequenceRegister, sequence_register_id
from v2v_intake.unpublished_records import IntakeUnpublishedRecords
from v2v_platform.config import EventStoreSettings
from v2v_platform.din_allocation import DinBlock, DinBlockExhausted
from v2v_platform.ids import Coi
from v2v_testkit.intake import DETAILS, ENROLLED_AT, FIN, SITE, FixedClock, din_block, operator

pytestmark = pytest.mark.integration

YEAR = 25
SIZE = 50


class Instance:
    """One intake process on the shared database: its application, records and key store."""

    def __init__(self, dsn: str, block: DinBlock) -> None:
        env = EventStoreSettings(postgres_dsn=dsn).eventsourcing_env()
        self.records = IntakeUnpublishedRecords(env=env, din_block=block, reservation_size=SIZE)
        self.keys = PostgresKeyStore(dsn)
        self.app = IntakeApplication(
            env=env,
            site_id=SITE,
            unpublished=self.records,
            clock=FixedClock(),
            fin=FIN,
            keys=self.keys,
        )

    def close(self) -> None:
        self.app.close()
        self.records.close()
        self.keys.close()


def register(records: IntakeUnpublishedRecords, kind: str) -> SequenceRegister:
    found = records.find(SequenceRegister, sequence_register_id(kind, FIN, YEAR))
    assert found is not None
    return found


@pytest.fixture
def instances(postgres_database: Any) -> Iterator[list[Instance]]:
    block = din_block(first=7_000, last=7_399)
    made = [Instance(postgres_database.dsn, block) for _ in range(2)]
    yield made
    for instance in made:
        instance.close()


def test_two_instances_enrol_concurrently_with_distinct_cois(instances: list[Instance]) -> None:
    threads, per_thread = 6, 20
    start = threading.Barrier(threads * 2)

    def enrol(job: tuple[int, int]) -> list[str]:
        which, thread = job
        start.wait()
        app = instances[which].app
        return [
            app.enrol_patient(f"PSN-{which}-{thread}-{n}", DETAILS, SITE, operator(), ENROLLED_AT)
            for n in range(per_thread)
        ]

    jobs = [(which, thread) for which in range(2) for thread in range(threads)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        cois = [coi for batch in pool.map(enrol, jobs) for coi in batch]
    total = 2 * threads * per_thread
    assert len(set(cois)) == len(cois) == total
    assert all(Coi.parse(coi).value == coi for coi in cois)
    assert register(instances[0].records, "COI").version <= 1 + ceil(total / SIZE) + 2


def test_two_instances_number_distinct_dins_inside_the_block(instances: list[Instance]) -> None:
    block = din_block(first=7_000, last=7_399)
    start = threading.Barrier(8)

    def label(job: tuple[int, int]) -> list[int]:
        which, thread = job
        start.wait()
        issued: list[int] = []
        for n in range(2_000):
            try:
                issued += instances[which].records.issue_dins(FIN, YEAR, 1 + (n + thread) % 3)
            except DinBlockExhausted:
                if (n + thread) % 3 == 0:  # not even one DIN left here: stop
                    return issued
        raise AssertionError("the block was never exhausted")

    jobs = [(which, thread) for which in range(2) for thread in range(4)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        dins = [din for batch in pool.map(label, jobs) for din in batch]
    assert len(dins) == len(set(dins))
    assert all(block.first <= din <= block.last for din in dins)
    din_register = register(instances[0].records, "DIN")
    assert din_register.last == block.last
    assert len(dins) >= block.size - 2 * (din_register.version - 1)
    with pytest.raises(DinBlockExhausted):
        instances[1].records.issue_dins(FIN, YEAR, 1)


def test_a_restart_continues_after_the_last_reservation(postgres_database: Any) -> None:
    block = din_block(first=7_000, last=7_399)
    first = Instance(postgres_database.dsn, block)
    assert first.records.issue_numbers("COI", FIN, YEAR) == [1]
    assert first.records.issue_dins(FIN, YEAR, 3) == [7_000, 7_001, 7_002]
    first.close()
    restarted = Instance(postgres_database.dsn, block)
    assert restarted.records.issue_numbers("COI", FIN, YEAR) == [1 + SIZE]
    assert restarted.records.issue_dins(FIN, YEAR, 1) == [7_000 + SIZE]
    restarted.close()
