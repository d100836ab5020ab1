"""Intake numbers DINs only from its declared block under its FIN (issue 14, invariant I1):
it does not start without one, or with one that overlaps another issuer's (an in-house site's
manufacturing under the same FIN); it continues after a restart and stops at the block's end."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_intake.settings import IntakeSettings
from v2v_intake.unpublished_records import IntakeUnpublishedRecords
from v2v_platform.config import ConfigurationError, load_settings
from v2v_platform.din_allocation import (
    DinAllocations,
    DinBlock,
    DinBlockExhausted,
    IssuingService,
    declare_all,
)
from v2v_platform.ids import Din
from v2v_testkit.intake import (
    FIN,
    SITE,
    build_intake,
    collected,
    din_block,
    labelled,
    operator,
    stored_events,
)

INTAKE = IssuingService(SITE, "intake")
MANUFACTURING = IssuingService(SITE, "manufacturing")


def settings(pki: Path) -> IntakeSettings:
    return IntakeSettings(site_id=SITE, fin=FIN, pki_dir=pki, manufacturing_target="x:1")


def test_intake_does_not_start_without_a_declared_block(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(
            IntakeSettings, site_id=SITE, fin=FIN, pki_dir=tmp_path, manufacturing_target="x:1"
        )
    [problem] = refused.value.problems
    assert problem.startswith("V2V_FIN: ")
    assert f"FIN {FIN}, issuer {SITE}/intake: no DIN block is declared" in problem


def test_intake_does_not_start_when_its_block_overlaps_manufacturings(tmp_path: Path) -> None:
    """An in-house site: one FIN, intake and manufacturing, blocks that share numbers."""
    DinAllocations(
        (DinBlock(FIN, INTAKE, 1, 500_000), DinBlock(FIN, MANUFACTURING, 500_000, 999_999))
    ).write(tmp_path)
    with pytest.raises(ValueError, match=f"overlaps {SITE}/manufacturing's block 500000-999999"):
        settings(tmp_path)


def test_intake_starts_with_its_own_block_beside_manufacturings(tmp_path: Path) -> None:
    declare_all(tmp_path, [(FIN, INTAKE), (FIN, MANUFACTURING)])
    assert settings(tmp_path).din_block() == DinBlock(FIN, INTAKE, 1, 499_999)


def test_labels_are_numbered_from_the_block() -> None:
    intake = build_intake(block=din_block(first=4_000, last=4_999))
    _, dins = labelled(intake, count=3)
    assert [Din.parse(d).sequence for d in dins] == ["004000", "004001", "004002"]


def test_nothing_is_labelled_past_the_end_of_the_block() -> None:
    intake = build_intake(block=din_block(first=10, last=12))
    coi, collection_id = collected(intake)
    intake.app.label_units(coi, collection_id, 2, "apheresis-bag", operator())
    before = len(stored_events(intake))
    with pytest.raises(DinBlockExhausted, match="exhausted: 2 DIN\\(s\\) asked, 1 left"):
        intake.app.label_units(coi, collection_id, 2, "apheresis-bag", operator())
    assert len(stored_events(intake)) == before  # no unit labelled
    [last] = intake.app.label_units(coi, collection_id, 1, "apheresis-bag", operator())
    assert Din.parse(last).sequence == "000012"


def test_a_restart_continues_after_the_last_number_issued(tmp_path: Path) -> None:
    """One number per register write (reservation size 1); with runs, a restart continues
    after the last run reserved (test_intake_number_reservations)."""
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "r.db")}
    block = din_block(first=200, last=299)
    records = IntakeUnpublishedRecords(env=env, din_block=block, reservation_size=1)
    assert records.issue_dins(FIN, 25, 2) == [200, 201]
    records.close()
    restarted = IntakeUnpublishedRecords(env=env, din_block=block, reservation_size=1)
    assert restarted.issue_dins(FIN, 25, 1) == [202]
    restarted.close()


def test_without_a_block_no_din_is_issued() -> None:
    records = IntakeUnpublishedRecords(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with pytest.raises(Exception, match="no DIN block"):
        records.issue_dins(FIN, 25, 1)
    with pytest.raises(ValueError, match="declared block"):
        records.issue_numbers("DIN", FIN, 25)
