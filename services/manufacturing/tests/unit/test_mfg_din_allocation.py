"""Manufacturing numbers product DINs only from its declared block under its FIN (issue 14,
invariant I1): at an in-house site intake labels apheresis bags under the same FIN from its
own block, so a product never gets a bag's DIN. Without a block, or with one that overlaps
another issuer's, the service does not start; a restart continues; the block's end stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_manufacturing.settings import ManufacturingSettings
from v2v_manufacturing.unpublished_records import ManufacturingUnpublishedRecords
from v2v_platform.conditions import Condition
from v2v_platform.din_allocation import (
    DinAllocations,
    DinBlock,
    DinBlockExhausted,
    IssuingService,
    declare_all,
)
from v2v_platform.ids import Din
from v2v_testkit import intake as at_intake
from v2v_testkit.manufacturing import (
    AT_GMP,
    COI,
    FIN,
    GMP,
    OTHER_COI,
    Clock,
    InMemoryManufacturingFacts,
    build_app,
    operator,
    receive,
)

MANUFACTURING = IssuingService(GMP, "manufacturing")
INTAKE = IssuingService(GMP, "intake")  # an in-house site: collection at the GMP site too
LABELLING = IssuingService(at_intake.SITE, "intake")


def settings(pki: Path) -> ManufacturingSettings:
    return ManufacturingSettings(site_id=GMP, fin=FIN, pki_dir=pki)


def test_manufacturing_does_not_start_without_a_declared_block(tmp_path: Path) -> None:
    declare_all(tmp_path, [(FIN, INTAKE)])
    with pytest.raises(ValueError) as refused:
        settings(tmp_path)
    assert f"FIN {FIN}, issuer {GMP}/manufacturing: no DIN block is declared" in str(refused.value)


def test_manufacturing_does_not_start_when_its_block_overlaps_intakes(tmp_path: Path) -> None:
    DinAllocations(
        (DinBlock(FIN, INTAKE, 1, 499_999), DinBlock(FIN, MANUFACTURING, 1, 999_999))
    ).write(tmp_path)
    with pytest.raises(ValueError, match=f"overlaps {GMP}/intake's block 1-499999"):
        settings(tmp_path)


def harvested(block: DinBlock, count: int = 2) -> list[str]:
    facts = InMemoryManufacturingFacts()
    app = build_app(facts, Clock(), din_block=block)
    din = receive(app, facts, 1)
    batch_id = app.start_batch([din], None, operator()).batch_id
    return app.harvest(batch_id, count, Condition.FRESH_COLD, operator())


def test_under_one_fin_a_product_never_gets_an_apheresis_bags_din(tmp_path: Path) -> None:
    """The issue's duplicate: intake labelled ...100, ...200, ...300 and Harvest gave ...100 and
    ...200 again under the same FIN. Declared blocks keep them apart (the in-house journey on
    the real services: tests/integration)."""
    allocations = declare_all(tmp_path, [(FIN, LABELLING), (FIN, MANUFACTURING)])
    intake_block, manufacturing_block = (
        allocations.block_of(FIN, LABELLING),
        allocations.block_of(FIN, MANUFACTURING),
    )
    assert intake_block is not None and manufacturing_block is not None
    labelling = at_intake.build_intake(block=intake_block)
    _, bags = at_intake.labelled(labelling, count=3)
    products = harvested(manufacturing_block)
    assert not {Din.parse(d).data for d in bags} & {Din.parse(d).data for d in products}
    assert [Din.parse(d).sequence for d in products] == ["500000", "500001"]


def test_nothing_is_harvested_past_the_end_of_the_block() -> None:
    small = DinBlock(FIN, MANUFACTURING, 900_000, 900_002)
    facts = InMemoryManufacturingFacts()
    app = build_app(facts, Clock(), din_block=small)
    batches = [
        app.start_batch([receive(app, facts, n, coi)], None, operator()).batch_id
        for n, coi in ((1, COI), (2, OTHER_COI))
    ]
    first = app.harvest(batches[0], 2, Condition.FRESH_COLD, operator())
    assert [Din.parse(d).sequence for d in first] == ["900000", "900001"]
    with pytest.raises(DinBlockExhausted, match=r"\(900000-900002\) is exhausted"):
        app.harvest(batches[1], 2, Condition.FRESH_COLD, operator())
    assert app.batch(batches[1], AT_GMP).status == "running"  # nothing harvested


def test_a_restart_continues_after_the_last_product_din(tmp_path: Path) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "r.db")}
    block = DinBlock(FIN, MANUFACTURING, 500_000, 999_999)
    records = ManufacturingUnpublishedRecords(env=env, din_block=block)
    first = records.reserve_product_dins(FIN, 25, 2, "batch-1", COI, operator())
    records.close()
    restarted = ManufacturingUnpublishedRecords(env=env, din_block=block)
    again = restarted.reserve_product_dins(FIN, 25, 2, "batch-1", COI, operator())
    [after] = restarted.reserve_product_dins(FIN, 25, 1, "batch-2", COI, operator())
    restarted.close()
    assert again == first  # a retried harvest gets the same DINs
    assert [d.sequence for d in [*first, after]] == ["500000", "500001", "500002"]


def test_without_a_block_no_product_din_is_issued() -> None:
    records = ManufacturingUnpublishedRecords(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with pytest.raises(Exception, match="no DIN block"):
        records.reserve_product_dins(FIN, 25, 1, "batch-1", COI, operator())
