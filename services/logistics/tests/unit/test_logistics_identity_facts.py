"""One DIN, one patient (issue 14, I1): logistics learns from verified facts which COIs each
DIN is bound to. The issue's in-house site labelled a bag for one patient and harvested a
product for another under the same DIN: the unit keeps the COI it was first learned for (it
used to take the last one's, so the bag "became" the other patient's product) and the DIN is
known to be in conflict (`ports.UnitIdentities`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Condition
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_logistics.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    SqlLogisticsFacts,
    create_tables,
)
from v2v_logistics.domain.values import UnitKind
from v2v_logistics.ports import NoUnitIdentities, UnitIdentities
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids.bindings import IDENTITY_CONFLICT
from v2v_testkit.logistics import COI, OTHER_COI

AT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
DIN = "S12342600000200"
OTHER_DIN = "S12342600000300"


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def delivered(aggregate: str, payload: Message) -> Delivered:
    content = EnvelopeContent(
        coi=getattr(payload, "coi", COI),
        aggregate_type="Therapy",
        aggregate_id=aggregate,
        aggregate_version=1,
        payload=payload,
        schema_version=1,
        recorded_at=AT,
        site_id="SHEBA",
        actor=Actor("u-1", "User One", "collection"),
    )
    signer = SiteSigningKey.from_seed("SHEBA", bytes(32))
    return Delivered(build_envelope(content, b"", signer), Location("t", 0, 1), [])


def test_a_din_bound_to_two_cois_keeps_its_first_and_is_in_conflict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteConsumerStore(tmp_path / "facts.sqlite", CONSUMER_NAME)
    create_tables(store.connection)
    bag = intake.UnitPackaged(
        coi=COI,
        din=DIN,
        condition=Condition.CONDITION_FRESH_COLD,
        window_starts_at=stamp(AT),
        manufacturing_site_id="SHEBA",
    )
    label = intake.UnitLabelled(coi=COI, collection_id="c", din=OTHER_DIN, unit_kind="bag")
    product = manufacturing.ProductUnitsCreated(
        coi=OTHER_COI,
        batch_id="b-2",
        product_dins=[DIN],
        hold_condition=Condition.CONDITION_CRYO,
        created_at=stamp(AT),
    )
    batch = [delivered("t-1", bag), delivered("t-2", label), delivered("b-2", product)]
    with (
        caplog.at_level(logging.CRITICAL, logger="v2v.identity"),
        store.transaction() as (unit_of_work, ledger),
    ):
        apply_once(batch, ledger, unit_of_work, FactsProjection())
    assert f"identity-conflict: DIN {DIN} is bound to COIs {COI}, {OTHER_COI}" in caplog.text

    facts: SqlLogisticsFacts = FACTS_FEED.sqlite_facts(tmp_path / "facts.sqlite")
    unit = facts.unit(DIN[:13])
    assert unit is not None and (unit.coi, unit.kind) == (COI, UnitKind.APHERESIS)
    identities: UnitIdentities = facts
    conflict = identities.identity_conflict(DIN[:13])
    assert conflict is not None and conflict.cois == (COI, OTHER_COI)
    assert conflict.reason_code == IDENTITY_CONFLICT
    assert identities.identity_conflict(OTHER_DIN[:13]) is None  # labelled for one patient
    assert NoUnitIdentities().identity_conflict(DIN[:13]) is None
