"""Intake on PostgreSQL + Kafka, driven through its real mTLS gRPC server and its HTTP API.

A small real gRPC ManufacturingService server books the slot (manufacturing is not under
test here). The relay publishes the outbox; the test reads v2v.intake.events.v1 and checks
every envelope's hash chain and signature.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
from fastapi.testclient import TestClient
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.intake.events.v1 import events_pb2 as events
from v2v.intake.v1 import intake_service_pb2 as pb
from v2v.intake.v1 import intake_service_pb2_grpc as pb_grpc
from v2v.manufacturing.v1 import manufacturing_service_pb2 as mpb
from v2v_intake.bootstrap import IntakeService, bootstrap
from v2v_intake.relay_spec import RELAY_SPEC
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import ChainVerifier
from v2v_platform.esign import Signer, hash_password, open_signer_store
from v2v_platform.grpc_service import build_server, translate_errors
from v2v_platform.relay.process import RelaySettings, build_relay
from v2v_platform.testing.kafka_topics import read_topic
from v2v_testkit.intake import declare_din_block, password_of

TOPIC = "v2v.intake.events.v1"
OPERATOR = common_pb2.Operator(user_id="u-1", printed_name="Ada Example")
MANUFACTURING_SERVICE = "v2v.manufacturing.v1.ManufacturingService"
EXPECTED_TYPES = [
    "PatientEnrolled",
    "SlotBooked",
    "CollectionRecorded",
    "UnitLabelled",
    "LabelMismatchRecorded",
    "LabelScanned",
    "LabelVerified",
    "UnitPackaged",
]


class SlotDesk:
    """A minimal manufacturing slot server for this test (BookSlot only)."""

    @translate_errors
    def book_slot(self, request: mpb.BookSlotRequest, context: Any) -> mpb.BookSlotResponse:
        return mpb.BookSlotResponse(
            slot_id=f"SLOT-{request.manufacturing_site_id}-{request.slot_date}",
            manufacturing_site_id=request.manufacturing_site_id,
            slot_date=request.slot_date,
        )

    def handler(self) -> Any:
        method = grpc.unary_unary_rpc_method_handler(
            self.book_slot,
            request_deserializer=mpb.BookSlotRequest.FromString,
            response_serializer=mpb.BookSlotResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(MANUFACTURING_SERVICE, {"BookSlot": method})


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = ["HOSP-A:collection", "GMP-B:manufacturing", "AUDIT-X:auditor"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def manufacturing_port(pki: Path) -> Iterator[int]:
    desk = SlotDesk()
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "GMP-B"),
        required_roles={f"/{MANUFACTURING_SERVICE}/BookSlot": frozenset({Role.COLLECTION})},
        register=lambda server: server.add_generic_rpc_handlers((desk.handler(),)),
        service_names=[MANUFACTURING_SERVICE],
    )
    yield running.port
    running.stop(0)


@pytest.fixture
def settings(
    pki: Path, manufacturing_port: int, postgres_database: Any, kafka_bootstrap: str
) -> IntakeSettings:
    fin = f"B{random.randint(0, 9999):04d}"  # fresh COIs: the broker may hold earlier runs
    declare_din_block(pki, fin)
    return IntakeSettings(
        site_id="HOSP-A",
        fin=fin,
        pki_dir=pki,
        manufacturing_target=f"127.0.0.1:{manufacturing_port}",
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
    )


@pytest.fixture
def service(settings: IntakeSettings) -> Iterator[IntakeService]:
    signers = open_signer_store(settings.postgres_dsn, None)  # `v2v signer add` does this
    for user_id, name in (("u-1", "Ada Example"), ("u-2", "Ben Example")):
        roles = frozenset({"collection"})
        signers.put(Signer("HOSP-A", user_id, name, roles, hash_password(password_of(user_id))))
    service = bootstrap(settings)
    yield service
    service.stop()


def _ts(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


@dataclass(frozen=True)
class ClinicalTimes:
    """When the test's therapy was enrolled, collected (end) and labelled."""

    enrolled_at: datetime
    collection_ended_at: datetime
    labelled_at: datetime

    @classmethod
    def days_ago(cls) -> ClinicalTimes:
        """A chain entered after the fact: enrolled five days ago, collected two days ago."""
        ended = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        return cls(ended - timedelta(days=3), ended, ended + timedelta(minutes=25))


def drive_grpc_until_labelled(
    stub: Any, pseudonym: str = "PSN-INT-1", times: ClinicalTimes | None = None
) -> tuple[str, str]:
    """Enrol, book, collect and label one unit (at `times`; by default enrolled a day ago,
    collected half an hour ago and labelled now)."""
    now = datetime.now(UTC)
    ended = now - timedelta(minutes=30)
    times = times or ClinicalTimes(now - timedelta(days=1), ended, now)
    details = pb.PersonalDetails(
        given_name="Zelda", family_name="Quixotic", mrn="MRN-4242", birth_date="1980-02-29"
    )
    coi = stub.EnrolPatient(
        pb.EnrolPatientRequest(
            operator=OPERATOR,
            patient_pseudonym=pseudonym,
            personal_details=details,
            treating_site_id="HOSP-A",
            enrolled_at=_ts(times.enrolled_at),
        ),
        timeout=10,
    ).coi
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    stub.BookSlot(
        pb.BookSlotRequest(
            operator=OPERATOR,
            coi=coi,
            manufacturing_site_id="GMP-B",
            slot_date=tomorrow,
            booked_at=_ts(times.enrolled_at + timedelta(hours=1)),
        ),
        timeout=10,
    )
    ended = times.collection_ended_at
    collection_id = stub.RecordCollection(
        pb.RecordCollectionRequest(
            operator=OPERATOR,
            coi=coi,
            started_at=_ts(ended - timedelta(hours=4)),
            ended_at=_ts(ended),
            volume_ml=205.0,
            total_nucleated_cells_e9=11.0,
            cd3_cells_e9=6.0,
        ),
        timeout=10,
    ).collection_id
    [din] = stub.LabelUnits(
        pb.LabelUnitsRequest(
            operator=OPERATOR,
            coi=coi,
            collection_id=collection_id,
            count=1,
            unit_kind="apheresis-bag",
            labelled_at=_ts(times.labelled_at),
        ),
        timeout=10,
    ).dins
    return coi, din


def verify_over_http(service: IntakeService, pki: Path, coi: str, din: str) -> None:
    client = TestClient(service.http_app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'HOSP-A')}"}
    url = f"/v1/therapies/{coi}/units/{din}/scans"
    first = {"user_id": "u-1", "printed_name": "Ada Example"}

    def signed(user_id: str) -> dict[str, str]:
        return {"user_id": user_id, "password": password_of(user_id), "meaning": "verification"}

    wrong = client.post(
        url,
        json={
            "operator": first,
            "scanned_din": din,
            "scanned_coi": "CHA123425999999",
            "signature": signed("u-1"),
        },
        headers=headers,
    )
    assert wrong.status_code == 409 and "coi-mismatch" in wrong.json()["detail"]
    good: dict[str, Any] = {
        "operator": first,
        "scanned_din": din,
        "scanned_coi": coi,
        "signature": signed("u-1"),
    }
    assert client.post(url, json=good, headers=headers).json() == {"verified": False}
    good["operator"] = {"user_id": "u-2", "printed_name": "Ben Example"}
    good["signature"] = signed("u-2")
    assert client.post(url, json=good, headers=headers).json() == {"verified": True}


def publish(settings: IntakeSettings, pki: Path) -> int:
    relay_settings = RelaySettings(
        context="intake",
        site_id="HOSP-A",
        signing_key_file=pki / "sites" / "HOSP-A" / "signing.key",
        postgres_dsn=settings.postgres_dsn,
        kafka_bootstrap=settings.kafka_bootstrap or "",
    )
    runtime = build_relay(RELAY_SPEC, relay_settings)
    try:
        return runtime.relay.publish_pending()
    finally:
        runtime.close()


@pytest.mark.integration
def test_intake_events_reach_kafka_signed_and_chained(
    service: IntakeService, settings: IntakeSettings, pki: Path
) -> None:
    running = service.start_grpc("127.0.0.1:0")
    try:
        channel = secure_channel(
            f"127.0.0.1:{running.port}", channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
        )
        stub = pb_grpc.IntakeServiceStub(channel)
        coi, din = drive_grpc_until_labelled(stub)
        verify_over_http(service, pki, coi, din)
        window = stub.PackageUnit(
            pb.PackageUnitRequest(
                operator=OPERATOR,
                coi=coi,
                din=din,
                condition=common_pb2.CONDITION_FRESH_COLD,
                manufacturing_site_id="GMP-B",
                temperature_c=4.0,
            ),
            timeout=10,
        ).window_starts_at
        assert window.ToDatetime(tzinfo=UTC) < datetime.now(UTC)
        with pytest.raises(grpc.RpcError) as refused:
            stub.PackageUnit(
                pb.PackageUnitRequest(
                    operator=OPERATOR,
                    coi=coi,
                    din=din,
                    condition=common_pb2.CONDITION_CRYO,
                    manufacturing_site_id="GMP-B",
                    temperature_c=-170,
                ),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        channel.close()
    finally:
        running.stop(0)

    with psycopg.connect(settings.postgres_dsn or "") as conn:
        stored = b"".join(
            bytes(r[0]) for r in conn.execute("SELECT state FROM intakeapplication_events")
        )
    assert b"MRN-4242" not in stored and b"Quixotic" not in stored

    assert publish(settings, pki) == len(EXPECTED_TYPES)
    located = read_topic(settings.kafka_bootstrap or "", TOPIC, lambda r: r.key == coi.encode())
    verifier = ChainVerifier(KeyRing.load(pki / "signing-keys.json"))
    breaks = [b for at, r in located for b in verifier.feed_bytes(r.value, at)]
    assert breaks == []
    envelopes = [decode(r.value) for _, r in located]
    assert [e.event_type.rsplit(".", 1)[-1] for e in envelopes] == EXPECTED_TYPES
    assert {e.site_id for e in envelopes} == {"HOSP-A"}
    assert all(e.actor.role == "collection" and e.actor.user_id for e in envelopes)


@pytest.mark.integration
def test_enrolment_and_labelling_reach_kafka_in_clinical_time(
    service: IntakeService, settings: IntakeSettings, pki: Path
) -> None:
    """A chain entered after the fact: PatientEnrolled on Kafka carries the enrolment time the
    site gave (five days ago) and UnitLabelled the labelling time (two days ago), both apart
    from the envelopes' recorded times (now)."""
    times = ClinicalTimes.days_ago()
    running = service.start_grpc("127.0.0.1:0")
    try:
        channel = secure_channel(
            f"127.0.0.1:{running.port}", channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
        )
        coi, din = drive_grpc_until_labelled(pb_grpc.IntakeServiceStub(channel), "PSN-INT-2", times)
        channel.close()
    finally:
        running.stop(0)
    assert publish(settings, pki) == 4
    located = read_topic(settings.kafka_bootstrap or "", TOPIC, lambda r: r.key == coi.encode())
    envelopes = {e.event_type.rsplit(".", 1)[-1]: e for e in (decode(r.value) for _, r in located)}
    enrolment = events.PatientEnrolled.FromString(envelopes["PatientEnrolled"].payload)
    assert enrolment.enrolled_at.ToDatetime(tzinfo=UTC) == times.enrolled_at
    label = events.UnitLabelled.FromString(envelopes["UnitLabelled"].payload)
    assert label.din == din and label.labelled_at.ToDatetime(tzinfo=UTC) == times.labelled_at
    recorded = envelopes["PatientEnrolled"].recorded_at
    assert recorded.ToDatetime(tzinfo=UTC) - times.enrolled_at > timedelta(days=4)


def scan_over_grpc(
    stub: Any, coi: str, din: str, user_id: str, at: datetime, scanned_coi: str = ""
) -> Any:
    """`user_id` scans the unit's label at `at` (reading `scanned_coi`: the unit's own COI
    unless given), re-authenticated with their own password."""
    operator = common_pb2.Operator(user_id=user_id, printed_name=f"Operator {user_id}")
    signature = common_pb2.ESignatureRequest(
        user_id=user_id, password=password_of(user_id), meaning="verification"
    )
    request = pb.VerifyLabelRequest(
        operator=operator,
        coi=coi,
        din=din,
        scanned_din=din,
        scanned_coi=scanned_coi or coi,
        signature=signature,
        scanned_at=_ts(at),
    )
    return stub.VerifyLabel(request, timeout=10)


@pytest.mark.integration
def test_a_journey_entered_after_the_fact_reaches_kafka_in_clinical_time(
    service: IntakeService, settings: IntakeSettings, pki: Path
) -> None:
    """Issue 14 item 2: a fortnight-old enrolment, collection, labelling, label scans (one
    refused) and packaging entered now reach Kafka with each envelope's `occurred_at` the
    clinical time given (the booking's too), and the scan and
    packaging payloads carry those times too; the projection's (occurred_at, event_id) order
    is the clinical order."""
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(days=14)
    times = ClinicalTimes(ended - timedelta(days=6), ended, ended + timedelta(minutes=20))
    refused_at = ended + timedelta(minutes=28)
    first_scan, second_scan = ended + timedelta(minutes=30), ended + timedelta(minutes=35)
    packaged_at = ended + timedelta(minutes=50)
    running = service.start_grpc("127.0.0.1:0")
    try:
        channel = secure_channel(
            f"127.0.0.1:{running.port}", channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
        )
        stub = pb_grpc.IntakeServiceStub(channel)
        coi, din = drive_grpc_until_labelled(stub, "PSN-INT-3", times)
        with pytest.raises(grpc.RpcError) as refused:
            scan_over_grpc(stub, coi, din, "u-1", refused_at, scanned_coi="CHA123425999999")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert scan_over_grpc(stub, coi, din, "u-1", first_scan).verified is False
        assert scan_over_grpc(stub, coi, din, "u-2", second_scan).verified is True
        packaging = pb.PackageUnitRequest(
            operator=OPERATOR,
            coi=coi,
            din=din,
            condition=common_pb2.CONDITION_FRESH_COLD,
            manufacturing_site_id="GMP-B",
            temperature_c=4.0,
            packaged_at=_ts(packaged_at),
        )
        assert stub.PackageUnit(packaging, timeout=10).window_starts_at == _ts(ended)
        channel.close()
    finally:
        running.stop(0)

    assert publish(settings, pki) == len(EXPECTED_TYPES)
    located = read_topic(settings.kafka_bootstrap or "", TOPIC, lambda r: r.key == coi.encode())
    envelopes = [decode(r.value) for _, r in located]
    by_type = {e.event_type.rsplit(".", 1)[-1]: e for e in envelopes}
    occurred = {name: e.occurred_at.ToDatetime(tzinfo=UTC) for name, e in by_type.items()}
    assert occurred == {
        "PatientEnrolled": times.enrolled_at,
        "SlotBooked": times.enrolled_at + timedelta(hours=1),
        "CollectionRecorded": ended,
        "UnitLabelled": times.labelled_at,
        "LabelMismatchRecorded": refused_at,
        "LabelScanned": first_scan,
        "LabelVerified": second_scan,
        "UnitPackaged": packaged_at,
    }
    recorded = [e.recorded_at.ToDatetime(tzinfo=UTC) for e in envelopes]
    assert all(moment - packaged_at > timedelta(days=13) for moment in recorded)
    payload = by_type["LabelVerified"].payload
    assert events.LabelVerified.FromString(payload).scanned_at.ToDatetime(tzinfo=UTC) == second_scan
    payload = by_type["UnitPackaged"].payload
    assert events.UnitPackaged.FromString(payload).packaged_at.ToDatetime(tzinfo=UTC) == packaged_at
    clinical_order = sorted(envelopes, key=lambda e: (e.occurred_at.ToDatetime(), e.event_id))
    assert [e.event_type.rsplit(".", 1)[-1] for e in clinical_order] == list(EXPECTED_TYPES)
