"""One DIN, one patient (issue 14, I1): infusion learns from verified facts which COIs each DIN
is bound to (intake's labels and packaging, manufacturing's product units). The issue's
in-house site bound S12342600000200 to patient 1's apheresis bag and to patient 2's product:
such a unit is refused at receipt, at the bedside and at every later step with reason code
`identity-conflict`, recorded like every other refusal there."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Condition as ConditionProto
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_infusion.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    SqlInfusionFacts,
)
from v2v_infusion.application import InfusionApplication
from v2v_infusion.domain.mismatches import UnattributableScan
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import IDENTITY_CONFLICT, ScanRefused, StepRefused
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_testkit.infusion import (
    BATCH,
    COI,
    OTHER_COI,
    InMemoryFacts,
    nurse,
    product_din,
    receive_released,
    scan,
    stored_events,
)

AT = datetime(2025, 6, 4, 8, 0, tzinfo=UTC)
DIN = "S12342600000200"  # the DIN


def delivered(aggregate: str, payload: Message, site: str) -> Delivered:
    content = EnvelopeContent(
        coi=getattr(payload, "coi", COI),
        aggregate_type="Test",
        aggregate_id=aggregate,
        aggregate_version=1,
        payload=payload,
        schema_version=1,
        recorded_at=AT,
        site_id=site,
        actor=Actor("u-1", "User One", "collection"),
    )
    signer = SiteSigningKey.from_seed(site, bytes(32))
    return Delivered(build_envelope(content, b"", signer), Location("t", 0, 1), [])


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def test_a_din_labelled_for_one_patient_and_made_for_another_is_a_known_conflict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteConsumerStore(tmp_path / "facts.sqlite", CONSUMER_NAME)
    facts: SqlInfusionFacts = FACTS_FEED.sqlite_facts(tmp_path / "facts.sqlite")
    bag = intake.UnitLabelled(coi=COI, collection_id="c-1", din=DIN, unit_kind="apheresis-bag")
    product = manufacturing.ProductUnitsCreated(
        coi=OTHER_COI,
        batch_id=BATCH,
        product_dins=[DIN, product_din(7)],
        hold_condition=ConditionProto.CONDITION_CRYO,
        created_at=stamp(AT),
    )
    batch = [delivered("therapy-1", bag, "SHEBA"), delivered("batch-1", product, "SHEBA")]
    with (
        caplog.at_level(logging.CRITICAL, logger="v2v.identity"),
        store.transaction() as (unit_of_work, ledger),
    ):
        assert apply_once(batch, ledger, unit_of_work, FactsProjection()).applied == 2
    assert f"identity-conflict: DIN {DIN} is bound to COIs {COI}, {OTHER_COI}" in caplog.text
    known = facts.product_unit(DIN[:13])
    assert known is not None and (known.coi, known.other_cois) == (OTHER_COI, (COI,))
    other = facts.product_unit(product_din(7)[:13])
    assert other is not None and other.other_cois == ()  # one patient's
    again = manufacturing.ProductUnitsCreated()
    again.CopyFrom(product)
    again.coi = COI  # another site makes a product with the same DIN for the first patient
    with store.transaction() as (unit_of_work, ledger):
        apply_once([delivered("batch-2", again, "GMP-X")], ledger, unit_of_work, FactsProjection())
    first = facts.product_unit(DIN[:13])
    assert first is not None and first.coi == OTHER_COI  # the first product binding stands


def in_conflict(facts: InMemoryFacts, din: str) -> None:
    """Verified facts now bind `din` to OTHER_COI as well."""
    unit = facts.units[din[:13]]
    facts.units[din[:13]] = replace(unit, other_cois=(OTHER_COI,))


def test_a_unit_in_conflict_is_refused_at_receipt_and_recorded(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = product_din(1)
    facts.create_products([din])
    in_conflict(facts, din)
    with pytest.raises(ScanRefused) as refused:
        app.receive_product(din, None, nurse())
    assert refused.value.reason_code == IDENTITY_CONFLICT
    assert f"{COI}, {OTHER_COI}" in str(refused.value)
    notifications = app.unpublished.recorder.select_notifications(1, 100)
    [recorded] = [app.unpublished.mapper.to_domain_event(n) for n in notifications]
    assert isinstance(recorded, UnattributableScan.Recorded)  # as every refused receipt scan
    assert (recorded.reason_code, recorded.scanned_din) == (IDENTITY_CONFLICT, din)
    assert stored_events(app) == []  # not received


def test_a_conflict_learned_after_receipt_stops_the_bedside_and_the_storage(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts, 1, Condition.CRYO)  # received and thawing
    fresh = receive_released(app, facts, 2)
    in_conflict(facts, din)
    in_conflict(facts, fresh)
    with pytest.raises(ScanRefused) as refused:
        scan(app, din)
    assert refused.value.reason_code == IDENTITY_CONFLICT
    recorded = [
        e for e in stored_events(app) if isinstance(e, ProductAtSite.BedsideMismatchRecorded)
    ]
    assert [(e.reason_code, e.coi, e.scanned_din) for e in recorded] == [
        (IDENTITY_CONFLICT, COI, din)
    ]
    with pytest.raises(StepRefused) as storage:
        app.store_product(fresh, "fridge 2", None, nurse())
    assert storage.value.reason_code == IDENTITY_CONFLICT
