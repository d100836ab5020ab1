"""Manufacturing on PostgreSQL + Kafka: intake's events projected, a batch with lineage through
gRPC (mTLS) and HTTP, and the manufacturing events published as verifiable signed chains, each
keyed by its valid COI; the unpublished records in their own tables of the same database.

Intake is not under test: signed intake-like envelopes are produced onto its topic directly.
Each site acts only on its own patients (issue 13): slots only for COIs the caller enrolled
(as intake's `PatientEnrolled` told manufacturing through Kafka), calendars with the caller's
own bookings only, expected units only to this GMP site and auditors.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
from fastapi.testclient import TestClient
from google.protobuf.message import DecodeError
from kafka import KafkaConsumer

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as pb_grpc
from v2v_manufacturing.bootstrap import ManufacturingService, bootstrap
from v2v_manufacturing.domain.receipt import UnattributableScan
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.config import EventStoreSettings
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import Coi, issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.manufacturing import (
    InMemoryManufacturingFacts,
    build_app,
    check_concurrent_bookings_never_overbook,
    declare_din_block,
)

GMP, HOSPITAL = "GMP-B", "HOSP-A"
OTHER_GMP, OTHER_HOSPITAL = "GMP-C", "HOSP-B"
FIRST_DAY = date(2026, 1, 1)
OPERATOR = Operator(user_id="u-op", printed_name="Grace Operator")
T = TypeVar("T")


def intake_stand_in(pki: Path, kafka: str) -> SignedEnvelopeProducer:
    """Intake's relay, as far as manufacturing can tell (intake is not under test here)."""
    signer = SiteSigningKey.load(HOSPITAL, pki / "sites" / HOSPITAL / "signing.key")
    actor = Actor("u-nurse", "Nurse One", "collection")
    return SignedEnvelopeProducer(kafka, "v2v.intake.events.v1", signer, actor)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [
        f"{HOSPITAL}:collection",
        f"{OTHER_HOSPITAL}:collection",
        f"{GMP}:manufacturing",
        f"{OTHER_GMP}:manufacturing",
        "AUDIT-1:auditor",
    ]
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
    running.start_facts_consumer(group_id=f"mfg-it-{random.getrandbits(32):08x}")
    yield running
    running.stop()


def enrolled(pki: Path, kafka: str, service: ManufacturingService, coi: str) -> None:
    """Intake at HOSPITAL enrolled the patient of `coi`, and manufacturing learnt it."""
    stand_in = intake_stand_in(pki, kafka)
    enrolment = intake.PatientEnrolled(
        coi=coi, patient_pseudonym="PSN-1", enrolling_site_id=HOSPITAL, treating_site_id=HOSPITAL
    )
    stand_in.publish(coi, enrolment)
    stand_in.close()
    facts = service.app.facts
    eventually(lambda: facts.enrolment(coi), "intake's enrolment to be projected")


def stub(pki: Path, service: ManufacturingService, site: str) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.ManufacturingServiceStub(channel), channel


def published(kafka: str, pki: Path, batch_id: str) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """Our site's manufacturing (record, envelope) pairs, read until the batch's products
    appear; and the chain breaks found."""
    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    key_id = SiteSigningKey.load(GMP, pki / "sites" / GMP / "signing.key").key_id
    consumer = KafkaConsumer(
        "v2v.manufacturing.events.v1",
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    mine: list[tuple[Any, Any]] = []
    breaks: list[Any] = []
    verifier = ChainVerifier(ring)
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
                mine.append((record, envelope))
                location = Location(record.topic, record.partition, record.offset)
                breaks.extend(verifier.feed(envelope, location))
            if any(
                e.event_type.endswith("ProductUnitsCreated") and e.aggregate_id == batch_id
                for _, e in mine
            ):
                return mine, breaks
    finally:
        consumer.close()
    raise AssertionError("the batch's ProductUnitsCreated never reached Kafka")


@pytest.mark.integration
def test_batch_with_lineage_from_intake_events(
    pki: Path, service: ManufacturingService, kafka_bootstrap: str
) -> None:
    sequence = random.randint(1, 999_999)
    coi = issue_coi("A1234", 25, sequence).value
    # the broker outlives the run: a day of its own keeps this run's slot ids (SITE/DAY/N) apart
    # from earlier runs' in intake's topic, which the projection reads from the start
    day = (FIRST_DAY + timedelta(days=random.randint(0, 30_000))).isoformat()
    dins = [str(issue_din("A1234", 25, random.randint(1, 999_999))) for _ in range(2)]
    gmp, gmp_channel = stub(pki, service, GMP)
    hospital, hospital_channel = stub(pki, service, HOSPITAL)
    enrolled(pki, kafka_bootstrap, service, coi)
    with gmp_channel, hospital_channel:
        gmp.SetSlotCapacity(
            pb.SetSlotCapacityRequest(
                operator=OPERATOR, manufacturing_site_id=GMP, slot_date=day, capacity=3
            ),
            timeout=10,
        )
        slot = hospital.BookSlot(
            pb.BookSlotRequest(
                operator=OPERATOR, coi=coi, manufacturing_site_id=GMP, slot_date=day
            ),
            timeout=10,
        )
        stand_in = intake_stand_in(pki, kafka_bootstrap)
        stand_in.publish(
            coi,
            intake.SlotBooked(
                coi=coi, manufacturing_site_id=GMP, slot_id=slot.slot_id, slot_date=day
            ),
        )
        collected = datetime.now(UTC) - timedelta(hours=6)
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
        facts = service.app.facts
        eventually(lambda: facts.packaged_unit(dins[1][:13]), "intake's events to be projected")

        wrong = pb.ReceiveUnitRequest(operator=OPERATOR, scanned_din=dins[0], scanned_coi="")
        with pytest.raises(grpc.RpcError) as refused:
            gmp.ReceiveUnit(wrong, timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        nowhere = pb.ReceiveUnitRequest(
            operator=OPERATOR, scanned_din="NOT-A-DIN", scanned_coi="NOT-A-COI"
        )
        with pytest.raises(grpc.RpcError) as unattributable:
            gmp.ReceiveUnit(nowhere, timeout=10)
        assert unattributable.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "neither a known unit nor a valid COI" in unattributable.value.details()
        for din in dins:
            receipt = gmp.ReceiveUnit(
                pb.ReceiveUnitRequest(operator=OPERATOR, scanned_din=din, scanned_coi=coi),
                timeout=10,
            )
            assert receipt.slot_id == slot.slot_id
        started = gmp.StartBatch(
            pb.StartBatchRequest(operator=OPERATOR, input_dins=dins), timeout=10
        )
        gmp.RecordProcessStep(
            pb.RecordProcessStepRequest(
                operator=OPERATOR,
                batch_id=started.batch_id,
                step_kind="transduction",
                device_type="CliniMACS Prodigy",
                device_serial="PRD-0042",
                reagent_lots=["TexMACS-L9"],
                vector_lot="LV-CD19-0031",
            ),
            timeout=10,
        )
        gmp.RecordInProcessQc(
            pb.RecordInProcessQcRequest(
                operator=OPERATOR,
                batch_id=started.batch_id,
                test="viability",
                value=93.0,
                unit="%",
                passed=True,
            ),
            timeout=10,
        )
        products = gmp.Harvest(
            pb.HarvestRequest(
                operator=OPERATOR,
                batch_id=started.batch_id,
                product_unit_count=2,
                hold_condition=Condition.CONDITION_FRESH_COLD,
            ),
            timeout=10,
        ).product_dins
        batch = gmp.GetBatch(pb.GetBatchRequest(batch_id=started.batch_id), timeout=10)
    assert (batch.coi, list(batch.input_dins), list(batch.product_dins)) == (
        coi,
        dins,
        list(products),
    )

    client = TestClient(service.http_app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'AUDIT-1')}"}
    view = client.get(f"/v1/batches/{started.batch_id}", headers=headers).json()
    assert view["product_dins"] == list(products) and view["status"] == "harvested"
    again = client.post(
        "/v1/receipts",
        json={
            "operator": {"user_id": "u-op", "printed_name": "Grace Operator"},
            "scanned_din": dins[0],
            "scanned_coi": coi,
        },
        headers={"Authorization": f"Bearer {issue_site_token(pki, GMP)}"},
    )
    assert again.status_code == 409 and "already received" in again.json()["detail"]

    records, breaks = published(kafka_bootstrap, pki, started.batch_id)
    envelopes = [envelope for _, envelope in records]
    assert not breaks
    # every record of this run: keyed by its envelope's COI, a valid COI (co-partitioning)
    for record, envelope in records:
        assert Coi.parse(envelope.coi).value == envelope.coi
        assert record.key == envelope.coi.encode()
    types = {e.event_type.rsplit(".", 1)[1] for e in envelopes}
    assert {
        "SlotBooked",
        "UnitReceiptMismatchRecorded",
        "UnitReceived",
        "UnitAllocatedToBatch",
        "BatchStarted",
        "ProcessStepRecorded",
        "InProcessQcRecorded",
        "ProductUnitsCreated",
    } <= types
    assert not types & {"SlotCapacitySet", "ProductDinsReserved"}  # internal now
    assert {e.coi for e in envelopes} == {coi}
    [mismatch] = [e for e in envelopes if e.event_type.endswith("UnitReceiptMismatchRecorded")]
    assert mismatch.coi == coi  # the known unit's chain, though the scanned COI was blank

    # the unpublished records: own tables in the same database, never published
    unpublished = service.unpublished
    scans = [
        e
        for e in map(
            unpublished.mapper.to_domain_event, unpublished.recorder.select_notifications(1, 100)
        )
        if isinstance(e, UnattributableScan.Recorded)
    ]
    assert [(s.scanned_din, s.scanned_coi) for s in scans] == [("NOT-A-DIN", "NOT-A-COI")]
    assert {"manufacturingapplication_events", "manufacturingregisters_events"} <= tables(
        service.settings.postgres_dsn or ""
    )


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.integration
def test_concurrent_bookings_never_overbook_on_postgres(
    postgres_database: PostgresDatabase,
) -> None:
    """The unit test's race, on PostgreSQL: the calendar's optimistic concurrency holds."""
    env = EventStoreSettings(postgres_dsn=postgres_database.dsn).eventsourcing_env()
    facts = InMemoryManufacturingFacts()
    app = build_app(facts, env=env, unpublished_env=env)
    try:
        check_concurrent_bookings_never_overbook(app, facts)
    finally:
        app.close()
        app.unpublished.close()


def refused_code(call: Any, request: Any) -> Any:
    with pytest.raises(grpc.RpcError) as refused:
        call(request, timeout=10)
    return refused.value.code()


@pytest.mark.integration
def test_each_site_books_sees_and_releases_only_its_own_patients_slots(
    pki: Path, service: ManufacturingService, kafka_bootstrap: str
) -> None:
    """Issue 13: HOSP-B booked a GMP slot for HOSP-A's patient and for a COI never issued,
    read HOSP-A's COIs in the calendar, and another GMP site read HOSP-A's DINs."""
    hers, never_issued = (
        issue_coi("A1234", 25, n).value for n in random.sample(range(1, 10**6), 2)
    )
    day = (FIRST_DAY + timedelta(days=random.randint(0, 30_000))).isoformat()
    enrolled(pki, kafka_bootstrap, service, hers)  # at HOSPITAL, through Kafka
    stubs = {site: stub(pki, service, site) for site in (GMP, HOSPITAL, OTHER_HOSPITAL, OTHER_GMP)}
    gmp, hospital, other_hospital, other_gmp = (stubs[s][0] for s in stubs)
    client = TestClient(service.http_app, raise_server_exceptions=False)

    def token(site: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}

    def booking(coi: str) -> pb.BookSlotRequest:
        return pb.BookSlotRequest(
            operator=OPERATOR, coi=coi, manufacturing_site_id=GMP, slot_date=day
        )

    def calendar(station: Any) -> Any:
        request = pb.GetSlotCalendarRequest(manufacturing_site_id=GMP, slot_date=day)
        return station.GetSlotCalendar(request, timeout=10)

    try:
        gmp.SetSlotCapacity(
            pb.SetSlotCapacityRequest(
                operator=OPERATOR, manufacturing_site_id=GMP, slot_date=day, capacity=2
            ),
            timeout=10,
        )
        # the unrelated hospital: as if the COI did not exist, nothing held
        assert refused_code(other_hospital.BookSlot, booking(hers)) == grpc.StatusCode.NOT_FOUND
        for coi in (hers, never_issued):
            response = client.post(
                f"/v1/calendars/{GMP}/{day}/bookings",
                json={"operator": {"user_id": "u-n", "printed_name": "Nurse B"}, "coi": coi},
                headers=token(OTHER_HOSPITAL),
            )
            assert response.status_code == 404, response.text
        assert refused_code(hospital.BookSlot, booking(never_issued)) == grpc.StatusCode.NOT_FOUND
        assert calendar(gmp).booked_count == 0
        # the enrolling hospital books
        slot = hospital.BookSlot(booking(hers), timeout=10)
        seen = calendar(other_hospital)
        assert (seen.capacity, seen.booked_count, list(seen.booked)) == (2, 1, [])
        assert hers not in str(seen)
        assert [b.slot_id for b in calendar(hospital).booked] == [slot.slot_id]
        assert [b.coi for b in calendar(gmp).booked] == [hers]
        audited = client.get(f"/v1/calendars/{GMP}/{day}", headers=token("AUDIT-1")).json()
        assert [b["coi"] for b in audited["bookings"]] == [hers]
        shown = client.get(f"/v1/calendars/{GMP}/{day}", headers=token(OTHER_HOSPITAL)).json()
        assert (shown["booked"], shown["bookings"]) == (1, [])
        release = pb.ReleaseSlotRequest(operator=OPERATOR, slot_id=slot.slot_id, reason="mine")
        assert refused_code(other_hospital.ReleaseSlot, release) == grpc.StatusCode.NOT_FOUND
        assert calendar(gmp).booked_count == 1

        # units bound for this GMP site: to it and auditors only
        din = str(issue_din("A1234", 25, random.randint(1, 999_999)))
        stand_in = intake_stand_in(pki, kafka_bootstrap)
        collected = datetime.now(UTC) - timedelta(hours=6)
        stand_in.publish(
            hers,
            intake.UnitPackaged(
                coi=hers,
                din=din,
                condition=Condition.CONDITION_FRESH_COLD,
                window_starts_at=timestamp(collected),
                packaged_at=timestamp(collected + timedelta(hours=1)),
                manufacturing_site_id=GMP,
            ),
        )
        stand_in.close()
        facts = service.app.facts
        eventually(lambda: facts.packaged_unit(din[:13]), "intake's unit to be projected")
        expected = pb.ListExpectedUnitsRequest(coi=hers)
        assert refused_code(other_gmp.ListExpectedUnits, expected) == grpc.StatusCode.NOT_FOUND
        elsewhere = client.get(f"/v1/expected-units/{hers}", headers=token(OTHER_GMP))
        assert elsewhere.status_code == 404 and din not in elsewhere.text
        assert [u.din for u in gmp.ListExpectedUnits(expected, timeout=10).units] == [din]
        audited_units = client.get(f"/v1/expected-units/{hers}", headers=token("AUDIT-1"))
        assert [u["din"] for u in audited_units.json()] == [din]

        hospital.ReleaseSlot(release, timeout=10)
        assert calendar(gmp).booked_count == 0
    finally:
        for _, channel in stubs.values():
            channel.close()
