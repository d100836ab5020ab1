"""One DIN, one patient (issue 14, I1): manufacturing learns from verified facts which COIs each
DIN is bound to (intake's labels and packaging, every GMP site's product units). The first
binding stands; a unit whose DIN is also bound to another COI is refused at receipt with
reason code `identity-conflict`, and the refusal is recorded on the chain at risk."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Condition as ConditionProto
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_manufacturing.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    SqlManufacturingFacts,
)
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.receipt import ReceiptMismatch
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.errors import Refused
from v2v_platform.ids.bindings import IDENTITY_CONFLICT
from v2v_testkit.manufacturing import (
    COI,
    DAY,
    GMP,
    HOSPITAL,
    OTHER_COI,
    OTHER_GMP,
    build_app,
    operator,
)

SIGNERS = {
    site: SiteSigningKey.from_seed(site, bytes([n + 1]) * 32)
    for n, site in enumerate((HOSPITAL, GMP, OTHER_GMP))
}
COLLECTED = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
BAG = "A12342500000200"  # the DIN: a bag of COI, then a product of OTHER_COI
SECOND_BAG = "A12342500000300"


def delivered(payload: Message, aggregate: str, version: int, site: str, topic: str) -> Delivered:
    content = EnvelopeContent(
        coi=getattr(payload, "coi", COI),
        aggregate_type="Therapy" if topic == "intake" else "Batch",
        aggregate_id=aggregate,
        aggregate_version=version,
        payload=payload,
        schema_version=1,
        recorded_at=COLLECTED,
        site_id=site,
        actor=Actor("u-1", "Someone", "collection" if topic == "intake" else "manufacturing"),
    )
    envelope = build_envelope(content, b"", SIGNERS[site])
    return Delivered(envelope, Location(f"v2v.{topic}.events.v1"), [])


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def packaged(din: str, coi: str = COI) -> intake.UnitPackaged:
    return intake.UnitPackaged(
        coi=coi,
        din=din,
        condition=ConditionProto.CONDITION_FRESH_COLD,
        window_starts_at=stamp(COLLECTED),
        manufacturing_site_id=GMP,
    )


def products(*dins: str, coi: str = OTHER_COI) -> manufacturing.ProductUnitsCreated:
    return manufacturing.ProductUnitsCreated(
        coi=coi,
        batch_id="batch-of-the-other-patient",
        product_dins=list(dins),
        hold_condition=ConditionProto.CONDITION_CRYO,
        created_at=stamp(COLLECTED),
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "facts.sqlite"


@pytest.fixture
def store(db: Path) -> SqliteConsumerStore:
    FACTS_FEED.sqlite_facts(db)  # creates the tables
    return SqliteConsumerStore(db, CONSUMER_NAME)


@pytest.fixture
def app(store: SqliteConsumerStore, db: Path) -> ManufacturingApplication:
    facts: SqlManufacturingFacts = FACTS_FEED.sqlite_facts(db)
    app = build_app(facts, lambda: COLLECTED.replace(hour=20))
    app.set_slot_capacity(GMP, DAY, 2, operator())
    enrolment = intake.PatientEnrolled(
        coi=COI, patient_pseudonym="PSN-1", enrolling_site_id=HOSPITAL, treating_site_id=HOSPITAL
    )
    fold(store, delivered(enrolment, "therapy", 1, HOSPITAL, "intake"))
    slot = app.book_slot(COI, GMP, DAY, operator(HOSPITAL, "collection")).slot_id
    booked = intake.SlotBooked(coi=COI, manufacturing_site_id=GMP, slot_id=slot, slot_date=DAY)
    fold(store, delivered(booked, "therapy", 2, HOSPITAL, "intake"))
    return app


def fold(store: SqliteConsumerStore, *batch: Delivered) -> int:
    with store.transaction() as (unit, ledger):
        return apply_once(batch, ledger, unit, FactsProjection()).applied


def labelled_and_packaged(store: SqliteConsumerStore, din: str, version: int) -> None:
    label = intake.UnitLabelled(coi=COI, collection_id="c-1", din=din, unit_kind="apheresis-bag")
    fold(
        store,
        delivered(label, "therapy", version, HOSPITAL, "intake"),
        delivered(packaged(din), "therapy", version + 1, HOSPITAL, "intake"),
    )


def test_a_bag_whose_din_is_also_a_product_of_another_patient_is_refused_at_receipt(
    app: ManufacturingApplication, store: SqliteConsumerStore, caplog: pytest.LogCaptureFixture
) -> None:
    labelled_and_packaged(store, BAG, 3)
    labelled_and_packaged(store, SECOND_BAG, 5)
    with caplog.at_level(logging.CRITICAL, logger="v2v.identity"):
        fold(store, delivered(products(BAG), "batch-2", 1, GMP, "manufacturing"))
    assert f"identity-conflict: DIN {BAG} is bound to COIs {COI}, {OTHER_COI}" in caplog.text

    with pytest.raises(Refused, match=IDENTITY_CONFLICT) as refused:
        app.receive_unit(BAG, COI, operator())
    assert f"{COI}, {OTHER_COI}" in str(refused.value)
    recorded = [
        event
        for event in map(app.mapper.to_domain_event, app.recorder.select_notifications(1, 100))
        if isinstance(event, ReceiptMismatch.Recorded)  # on the chain at risk: the bag's COI
    ]
    assert [(r.reason_code, r.coi, r.scanned_din) for r in recorded] == [
        (IDENTITY_CONFLICT, COI, BAG)
    ]
    assert app.receive_unit(SECOND_BAG, COI, operator()).coi == COI  # its DIN is one patient's


def test_the_first_binding_stands_and_the_conflict_is_known_whatever_the_order(
    store: SqliteConsumerStore, db: Path
) -> None:
    facts: SqlManufacturingFacts = FACTS_FEED.sqlite_facts(db)
    fold(store, delivered(products(BAG), "batch-2", 1, OTHER_GMP, "manufacturing"))
    assert facts.identity_conflict(BAG[:13]) is None  # one COI so far: the product's
    fold(store, delivered(packaged(BAG), "therapy", 1, HOSPITAL, "intake"))
    conflict = facts.identity_conflict(BAG[:13])
    assert conflict is not None and conflict.cois == (OTHER_COI, COI)  # first learned first
    assert conflict.reason_code == IDENTITY_CONFLICT
    unit = facts.packaged_unit(BAG[:13])
    assert unit is not None and (unit.coi, unit.other_cois) == (COI, (OTHER_COI,))
    fold(store, delivered(packaged(BAG, OTHER_COI), "therapy-2", 1, HOSPITAL, "intake"))
    again = facts.packaged_unit(BAG[:13])
    assert again is not None and again.coi == COI  # packaged first for COI: that stands


def test_bindings_to_one_coi_are_no_conflict(store: SqliteConsumerStore, db: Path) -> None:
    facts: SqlManufacturingFacts = FACTS_FEED.sqlite_facts(db)
    labelled_and_packaged(store, BAG, 1)
    made = products("W12342550000000", coi=COI)
    made.input_dins.append(BAG)  # the product inherits its input's COI
    fold(store, delivered(made, "batch-1", 1, GMP, "manufacturing"))
    assert facts.identity_conflict(BAG[:13]) is None
    unit = facts.packaged_unit(BAG[:13])
    assert unit is not None and unit.other_cois == ()
