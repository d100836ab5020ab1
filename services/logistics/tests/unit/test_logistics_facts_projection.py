"""Units learned from other contexts' events: intake's packaged units and manufacturing's
product units, folded once per (aggregate, version) into logistics' own table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Condition
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_logistics.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    create_tables,
)
from v2v_logistics.domain.values import UnitKind
from v2v_platform.conditions import Condition as Kernel
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_testkit.logistics import COI, din

AT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def delivered(site: str, aggregate: str, version: int, payload: Message) -> Delivered:
    content = EnvelopeContent(
        coi=COI,
        aggregate_type="Therapy",
        aggregate_id=aggregate,
        aggregate_version=version,
        payload=payload,
        schema_version=1,
        recorded_at=AT,
        site_id=site,
        actor=Actor("u-1", "User One", "collection"),
    )
    signer = SiteSigningKey.from_seed(site, bytes(32))
    return Delivered(build_envelope(content, b"", signer), Location("t", 0, version), [])


def test_packaged_and_product_units_become_known_with_their_first_custodian(
    tmp_path: Path,
) -> None:
    store = SqliteConsumerStore(tmp_path / "facts.sqlite", CONSUMER_NAME)
    create_tables(store.connection)
    packaged = intake.UnitPackaged(
        coi=COI,
        din=din(1),
        condition=Condition.CONDITION_FRESH_COLD,
        window_starts_at=stamp(AT),
        manufacturing_site_id="GMP-B",
    )
    products = manufacturing.ProductUnitsCreated(
        coi=COI,
        batch_id="b-1",
        product_dins=["W12342500000100"],
        hold_condition=Condition.CONDITION_CRYO,
        created_at=stamp(AT),
    )
    batch = [
        delivered("HOSP-A", "therapy-1", 1, packaged),
        delivered("HOSP-A", "therapy-1", 1, packaged),  # redelivered: applied once
        delivered("GMP-B", "batch-1", 1, products),
        delivered("GMP-B", "batch-1", 2, intake.UnitPackaged(coi="not a coi", din=din(2))),
    ]
    with store.transaction() as (unit_of_work, ledger):
        stats = apply_once(batch, ledger, unit_of_work, FactsProjection())
    assert (stats.applied, stats.duplicates) == (3, 1)
    facts = FACTS_FEED.sqlite_facts(tmp_path / "facts.sqlite")
    apheresis = facts.unit(din(1)[:13])
    assert apheresis is not None
    assert (apheresis.coi, apheresis.kind, apheresis.condition) == (
        COI,
        UnitKind.APHERESIS,
        Kernel.FRESH_COLD,
    )
    assert (apheresis.first_custodian, apheresis.window_starts_at) == ("site:HOSP-A", AT)
    product = facts.unit("W123425000001")
    assert product is not None and product.kind is UnitKind.PRODUCT
    assert (product.first_custodian, product.condition) == ("site:GMP-B", Kernel.CRYO)
    assert facts.unit(din(2)[:13]) is None  # a malformed event is skipped, not projected
