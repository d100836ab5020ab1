"""Consumer side of intake's contract: intake's golden vectors folded into our projection, and
who enrolled each COI (the verified author of its first `PatientEnrolled`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Condition as ConditionProto
from v2v.intake.events.v1 import events_pb2 as intake
from v2v_manufacturing.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    SqlManufacturingFacts,
)
from v2v_manufacturing.domain.values import Enrolment
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_testkit.golden.manufacturing import GOLDEN_DIR
from v2v_testkit.manufacturing import (
    COI,
    DAY,
    GMP,
    HOSPITAL,
    OTHER_COI,
    OTHER_HOSPITAL,
    build_app,
    operator,
)

INTAKE_GOLDEN = GOLDEN_DIR.parents[1] / "intake" / "v1"
SIGNERS = {
    site: SiteSigningKey.from_seed(site, bytes([n]) * 32)
    for n, site in enumerate((HOSPITAL, OTHER_HOSPITAL))
}
COLLECTED = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def golden_messages() -> list[Message]:
    messages = []
    for path in sorted(INTAKE_GOLDEN.glob("*.bin")):
        message_class = getattr(intake, path.stem, None)
        if message_class is not None:
            messages.append(message_class.FromString(path.read_bytes()))
    return messages


def delivered(
    payload: Message, aggregate: str = "agg-1", version: int = 1, site: str = HOSPITAL
) -> Delivered:
    content = EnvelopeContent(
        coi=getattr(payload, "coi", COI),
        aggregate_type="Therapy",
        aggregate_id=aggregate,
        aggregate_version=version,
        payload=payload,
        schema_version=1,
        recorded_at=COLLECTED,
        site_id=site,
        actor=Actor("u-1", "Nurse One", "collection"),
    )
    return Delivered(
        build_envelope(content, b"", SIGNERS[site]), Location("v2v.intake.events.v1"), []
    )


def enrolment(
    coi: str = COI, enrolling_site: str = HOSPITAL, treating_site: str = HOSPITAL
) -> intake.PatientEnrolled:
    return intake.PatientEnrolled(
        coi=coi,
        patient_pseudonym="PSN-1",
        enrolling_site_id=enrolling_site,
        treating_site_id=treating_site,
    )


def fold(store: SqliteConsumerStore, *batch: Delivered) -> int:
    with store.transaction() as (unit, ledger):
        return apply_once(batch, ledger, unit, FactsProjection()).applied


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "facts.sqlite"


@pytest.fixture
def store(db: Path) -> SqliteConsumerStore:
    facts = FACTS_FEED.sqlite_facts(db)  # creates the tables
    del facts
    return SqliteConsumerStore(db, CONSUMER_NAME)


def test_intake_golden_vectors_exist_and_decode() -> None:
    names = {path.stem for path in INTAKE_GOLDEN.glob("*.bin")}
    assert {"UnitPackaged", "SlotBooked"} <= names
    assert all(getattr(intake, name, None) is not None for name in names)


def test_every_intake_golden_vector_is_folded(store: SqliteConsumerStore, db: Path) -> None:
    messages = golden_messages()
    batch = [delivered(m, f"agg-{i}") for i, m in enumerate(messages)]
    assert fold(store, *batch) == len(messages)
    facts = FACTS_FEED.sqlite_facts(db)
    packaged = next(m for m in messages if isinstance(m, intake.UnitPackaged))
    unit = facts.packaged_unit(packaged.din[:13])
    assert unit is not None
    assert (unit.din, unit.coi, unit.manufacturing_site_id) == (
        packaged.din,
        packaged.coi,
        packaged.manufacturing_site_id,
    )
    assert unit.condition is Condition.FRESH_COLD
    assert unit.window_starts_at == packaged.window_starts_at.ToDatetime(tzinfo=UTC)
    booked = next(m for m in messages if isinstance(m, intake.SlotBooked))
    assert facts.booked_slot_ids(booked.coi, booked.manufacturing_site_id) == [booked.slot_id]
    enrolled = next(m for m in messages if isinstance(m, intake.PatientEnrolled))
    assert enrolled.enrolling_site_id == HOSPITAL  # the author of the envelopes built here
    assert facts.enrolment(enrolled.coi) == Enrolment(
        enrolled.coi, HOSPITAL, enrolled.treating_site_id
    )


def test_the_enrolling_site_is_the_verified_author_and_the_first_enrolment_stands(
    store: SqliteConsumerStore, db: Path
) -> None:
    facts = FACTS_FEED.sqlite_facts(db)
    assert facts.enrolment(COI) is None
    fold(store, delivered(enrolment(treating_site="HOSP-T"), "therapy-1"))
    assert facts.enrolment(COI) == Enrolment(COI, HOSPITAL, "HOSP-T")
    claim = enrolment(enrolling_site=OTHER_HOSPITAL, treating_site=OTHER_HOSPITAL)
    assert fold(store, delivered(claim, "therapy-2", site=OTHER_HOSPITAL)) == 1
    assert facts.enrolment(COI) == Enrolment(COI, HOSPITAL, "HOSP-T")  # unchanged


def test_an_enrolment_naming_another_site_than_its_author_is_skipped(
    store: SqliteConsumerStore, db: Path
) -> None:
    facts = FACTS_FEED.sqlite_facts(db)
    forged = enrolment(OTHER_COI, enrolling_site=HOSPITAL)
    assert fold(store, delivered(forged, "therapy-3", site=OTHER_HOSPITAL)) == 1
    assert facts.enrolment(OTHER_COI) is None
    no_coi = enrolment("CH-NOT-A-COI")
    fold(store, delivered(no_coi, "therapy-4"))
    assert facts.enrolment("CH-NOT-A-COI") is None


def test_redelivery_is_applied_once(store: SqliteConsumerStore) -> None:
    packaged = next(m for m in golden_messages() if isinstance(m, intake.UnitPackaged))
    assert fold(store, delivered(packaged)) == 1
    assert fold(store, delivered(packaged)) == 0


def test_malformed_facts_are_skipped_not_fatal(store: SqliteConsumerStore, db: Path) -> None:
    bad = intake.UnitPackaged(coi=COI, din="NOT-A-DIN", condition=ConditionProto.CONDITION_CRYO)
    unspecified = intake.UnitPackaged(coi=COI, din="A12342500000700")
    no_coi = intake.UnitPackaged(
        coi="CH-NOT-A-COI", din="A12342500000900", condition=ConditionProto.CONDITION_CRYO
    )
    slot_without_coi = intake.SlotBooked(
        coi="", manufacturing_site_id=GMP, slot_id=f"{GMP}/{DAY}/1", slot_date=DAY
    )
    batch = [delivered(bad, "a"), delivered(unspecified, "b"), delivered(no_coi, "c")]
    assert fold(store, *batch, delivered(slot_without_coi, "d")) == 4
    facts = FACTS_FEED.sqlite_facts(db)
    assert facts.packaged_unit("A123425000007") is None
    assert facts.packaged_unit("A123425000009") is None  # a unit is only ever bound to a COI
    assert facts.booked_slot_ids("", GMP) == []


def window(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def test_projected_facts_let_an_expected_unit_be_received(
    store: SqliteConsumerStore, db: Path
) -> None:
    facts: SqlManufacturingFacts = FACTS_FEED.sqlite_facts(db)
    app = build_app(facts, lambda: COLLECTED.replace(hour=20))
    app.set_slot_capacity(GMP, DAY, 2, operator())
    fold(store, delivered(enrolment(), "therapy", 1))
    slot = app.book_slot(COI, GMP, DAY, operator(HOSPITAL, "collection"))
    din = "A12342500000800"
    fold(
        store,
        delivered(
            intake.SlotBooked(
                coi=COI, manufacturing_site_id=GMP, slot_id=slot.slot_id, slot_date=DAY
            ),
            "t",
            1,
        ),
        delivered(
            intake.UnitPackaged(
                coi=COI,
                din=din,
                condition=ConditionProto.CONDITION_FRESH_AMBIENT,
                window_starts_at=window(COLLECTED),
                manufacturing_site_id=GMP,
            ),
            "t",
            2,
        ),
    )
    receipt = app.receive_unit(din, COI, operator())
    assert (receipt.slot_id, receipt.condition) == (slot.slot_id, Condition.FRESH_AMBIENT)
