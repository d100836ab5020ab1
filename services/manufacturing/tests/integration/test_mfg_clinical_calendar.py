"""A batch entered after the fact on PostgreSQL + Kafka (issue 14): a ten-day clinical calendar
in the past (start day 0, process steps days 1..9, in-process QC day 9, harvest day 10) is
recorded through gRPC with the times things happened, and the published chain says exactly
those times, in the payloads and in each envelope's `occurred_at` (receipts and allocations
too). A second batch of the same
patient that failed on day 3 publishes `BatchFailed.failed_at`. Before process steps carried
`performed_at` they were stamped when recorded (today), so the harvest back-dated to day 10
was refused as "before the last process step".

Intake is not under test: signed intake-like envelopes are produced onto its topic directly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from kafka import KafkaConsumer

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as events
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as pb_grpc
from v2v_manufacturing.bootstrap import ManufacturingService, bootstrap
from v2v_manufacturing.domain.receipt import ReceivedUnit
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import from_timestamp, timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.manufacturing import declare_din_block

pytestmark = pytest.mark.integration
GMP, HOSPITAL = "GMP-B", "HOSP-A"
OPERATOR = Operator(user_id="u-op", printed_name="Grace Operator")
DAY = timedelta(days=1)
STEP_KINDS = [
    "selection",
    "activation",
    "transduction",
    "expansion",
    "expansion",
    "expansion",
    "expansion",
    "harvest",
    "formulation",
]


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{HOSPITAL}:collection", f"{GMP}:manufacturing"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    declare_din_block(tmp_path / "pki", "W1234")
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[ManufacturingService]:
    settings = ManufacturingSettings(
        site_id=GMP,
        fin="W1234",
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        sqlite_path=None,
        kafka_bootstrap=kafka_bootstrap,
    )
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    running.start_facts_consumer(group_id=f"mfg-cal-{random.getrandbits(32):08x}")
    yield running
    running.stop()


def told_by_intake(
    pki: Path, kafka: str, service: ManufacturingService, gmp: Any, coi: str, dins: list[str]
) -> datetime:
    """Intake at HOSPITAL enrolled the patient, booked a slot at GMP and packaged `dins`
    (fresh, collection ended 12 days and 6 hours ago); manufacturing learnt it. Returns the
    collection's end."""
    signer = SiteSigningKey.load(HOSPITAL, pki / "sites" / HOSPITAL / "signing.key")
    stand_in = SignedEnvelopeProducer(
        kafka, "v2v.intake.events.v1", signer, Actor("u-nurse", "Nurse One", "collection")
    )
    stand_in.publish(
        coi,
        intake.PatientEnrolled(
            coi=coi,
            patient_pseudonym="PSN-CAL",
            enrolling_site_id=HOSPITAL,
            treating_site_id=HOSPITAL,
        ),
    )
    facts = service.app.facts
    eventually(lambda: facts.enrolment(coi), "intake's enrolment to be projected")
    # a day of its own keeps this run's slot ids apart from earlier runs' on the shared broker
    day = (date(2026, 1, 1) + timedelta(days=random.randint(0, 30_000))).isoformat()
    gmp.SetSlotCapacity(
        pb.SetSlotCapacityRequest(
            operator=OPERATOR, manufacturing_site_id=GMP, slot_date=day, capacity=2
        ),
        timeout=10,
    )
    hospital, channel = stub(pki, service, HOSPITAL)
    with channel:
        slot = hospital.BookSlot(
            pb.BookSlotRequest(
                operator=OPERATOR, coi=coi, manufacturing_site_id=GMP, slot_date=day
            ),
            timeout=10,
        )
    stand_in.publish(
        coi,
        intake.SlotBooked(coi=coi, manufacturing_site_id=GMP, slot_id=slot.slot_id, slot_date=day),
    )
    collected = datetime.now(UTC).replace(microsecond=0) - 12 * DAY - timedelta(hours=6)
    for din in dins:
        stand_in.publish(
            coi,
            intake.UnitPackaged(
                coi=coi,
                din=din,
                condition=Condition.CONDITION_FRESH_COLD,
                window_starts_at=timestamp(collected),
                packaged_at=timestamp(collected + timedelta(hours=1)),
                manufacturing_site_id=GMP,
            ),
        )
    stand_in.close()
    eventually(lambda: all(facts.packaged_unit(d[:13]) for d in dins), "units to be projected")
    return collected


def stub(pki: Path, service: ManufacturingService, site: str) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.ManufacturingServiceStub(channel), channel


def step(batch_id: str, kind: str, at: datetime) -> pb.RecordProcessStepRequest:
    return pb.RecordProcessStepRequest(
        operator=OPERATOR,
        batch_id=batch_id,
        step_kind=kind,
        device_type="CliniMACS Prodigy",
        device_serial="PRD-0042",
        reagent_lots=["TexMACS-L9"],
        vector_lot="LV-CD19-0031" if kind == "transduction" else "",
        performed_at=timestamp(at),
    )


def qc(batch_id: str, value: float, at: datetime) -> pb.RecordInProcessQcRequest:
    return pb.RecordInProcessQcRequest(
        operator=OPERATOR,
        batch_id=batch_id,
        test="viability",
        value=value,
        unit="%",
        passed=value >= 70,
        measured_at=timestamp(at),
    )


def published(kafka: str, pki: Path, batch_ids: set[str]) -> tuple[list[Any], list[Any]]:
    """This site's manufacturing envelopes, read until every batch of `batch_ids` ended
    (harvested or failed); and the chain breaks found."""
    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    key_id = SiteSigningKey.load(GMP, pki / "sites" / GMP / "signing.key").key_id
    consumer = KafkaConsumer(
        "v2v.manufacturing.events.v1",
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    mine: list[Any] = []
    breaks: list[Any] = []
    verifier = ChainVerifier(ring)
    ending = ("ProductUnitsCreated", "BatchFailed")
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                try:
                    envelope = decode(record.value)
                except DecodeError:
                    continue  # another test's deliberately broken record on the shared broker
                if envelope.signing_key_id != key_id:
                    continue  # another run's site key
                mine.append(envelope)
                location = Location(record.topic, record.partition, record.offset)
                breaks.extend(verifier.feed(envelope, location))
            ended = {e.aggregate_id for e in mine if e.event_type.endswith(ending)}
            if batch_ids <= ended:
                return mine, breaks
    finally:
        consumer.close()
    raise AssertionError("the batches' ends never reached Kafka")


def of_type(envelopes: list[Any], batch_id: str, message: Any) -> list[tuple[Any, Any]]:
    """(envelope, payload) of the batch's events of this message type, in publishing order."""
    name = message.DESCRIPTOR.full_name
    found = []
    for envelope in envelopes:
        if envelope.event_type == name and envelope.aggregate_id == batch_id:
            payload = message()
            payload.ParseFromString(envelope.payload)
            found.append((envelope, payload))
    return found


def test_a_ten_day_batch_in_the_past_is_published_at_its_clinical_times(
    pki: Path, service: ManufacturingService, kafka_bootstrap: str
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    dins = [str(issue_din("A1234", 25, random.randint(1, 999_999))) for _ in range(2)]
    gmp, channel = stub(pki, service, GMP)
    with channel:
        collected = told_by_intake(pki, kafka_bootstrap, service, gmp, coi, dins)
        received = collected + timedelta(hours=4)
        day0 = collected + timedelta(hours=6)  # 12 days ago
        for din in dins:
            gmp.ReceiveUnit(
                pb.ReceiveUnitRequest(
                    operator=OPERATOR,
                    scanned_din=din,
                    scanned_coi=coi,
                    received_at=timestamp(received),
                ),
                timeout=10,
            )
        start = pb.StartBatchRequest(operator=OPERATOR, started_at=timestamp(day0))
        start.input_dins.append(dins[0])
        made = gmp.StartBatch(start, timeout=10).batch_id
        del start.input_dins[:]
        start.input_dins.append(dins[1])
        failing = gmp.StartBatch(start, timeout=10).batch_id

        performed = [day0 + n * DAY for n in range(1, 10)]
        for kind, at in zip(STEP_KINDS, performed, strict=True):
            gmp.RecordProcessStep(step(made, kind, at), timeout=10)
        measured = day0 + 9 * DAY + timedelta(hours=3)
        gmp.RecordInProcessQc(qc(made, 91.0, measured), timeout=10)
        harvested = day0 + 10 * DAY
        products = gmp.Harvest(
            pb.HarvestRequest(
                operator=OPERATOR,
                batch_id=made,
                product_unit_count=1,
                hold_condition=Condition.CONDITION_CRYO,
                harvested_at=timestamp(harvested),
            ),
            timeout=10,
        ).product_dins

        gmp.RecordProcessStep(step(failing, "selection", day0 + DAY), timeout=10)
        gmp.RecordInProcessQc(qc(failing, 41.0, day0 + 3 * DAY), timeout=10)
        failed = day0 + 3 * DAY + timedelta(hours=2)
        gmp.FailBatch(
            pb.FailBatchRequest(
                operator=OPERATOR,
                batch_id=failing,
                reason="viability 41 %: no expansion",
                failed_at=timestamp(failed),
            ),
            timeout=10,
        )
        view = gmp.GetBatch(pb.GetBatchRequest(batch_id=made), timeout=10)
    assert [from_timestamp(s.performed_at) for s in view.steps] == performed
    assert [from_timestamp(q.measured_at) for q in view.qc_results] == [measured]

    envelopes, breaks = published(kafka_bootstrap, pki, {made, failing})
    assert not breaks

    def clinical(envelope: Any) -> datetime:
        return from_timestamp(envelope.occurred_at)

    receipts = [
        (e, r)
        for din in dins
        for e, r in of_type(envelopes, str(ReceivedUnit.create_id(din[:13])), events.UnitReceived)
    ]
    assert [from_timestamp(r.received_at) for _, r in receipts] == [received] * 2
    assert [clinical(e) for e, _ in receipts] == [received] * 2
    allocations = [
        e
        for din in dins
        for e, _ in of_type(
            envelopes, str(ReceivedUnit.create_id(din[:13])), events.UnitAllocatedToBatch
        )
    ]
    assert [clinical(e) for e in allocations] == [day0] * 2  # as input when its batch started
    [(start_env, started)] = of_type(envelopes, made, events.BatchStarted)
    assert from_timestamp(started.started_at) == clinical(start_env) == day0
    steps = of_type(envelopes, made, events.ProcessStepRecorded)
    assert [s.step_kind for _, s in steps] == STEP_KINDS
    assert [from_timestamp(s.performed_at) for _, s in steps] == performed
    assert [clinical(e) for e, _ in steps] == performed
    assert all(from_timestamp(e.recorded_at) > harvested for e, _ in steps)  # entered later
    [(qc_env, result)] = of_type(envelopes, made, events.InProcessQcRecorded)
    assert from_timestamp(result.measured_at) == clinical(qc_env) == measured
    [(made_env, created)] = of_type(envelopes, made, events.ProductUnitsCreated)
    assert list(created.product_dins) == list(products)
    assert from_timestamp(created.created_at) == clinical(made_env) == harvested
    assert from_timestamp(made_env.recorded_at) > harvested

    [(failed_env, failure)] = of_type(envelopes, failing, events.BatchFailed)
    assert failure.failure_reason == "viability 41 %: no expansion"
    assert from_timestamp(failure.failed_at) == clinical(failed_env) == failed
    [(_, failed_qc)] = of_type(envelopes, failing, events.InProcessQcRecorded)
    assert from_timestamp(failed_qc.measured_at) == day0 + 3 * DAY
