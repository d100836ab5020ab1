"""Release, logistics and infusion as separate processes on PostgreSQL and Kafka.

A fresh product batch (manufacturing's and intake's facts are produced onto their topics as
their relays would) is provisionally certified by the QP (e-signed, re-authenticated), shipped
to the treating site by a courier, received, verified at the bedside by two nurses and infused.
Then sterility fails: the post-release failure must be visible as an alert at the infusion site
within 2 seconds of the release service recording it (the measured delay is printed), the
second bag of the batch is refused at the bedside until the treating physician acknowledges the
alert (e-signed), and every published event verifies.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import httpx
import pytest

from v2v.common.v1.common_pb2 import CONDITION_FRESH_COLD, ESignatureRequest, Operator
from v2v.infusion.v1 import infusion_service_pb2 as inf_pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as inf_grpc
from v2v.intake.events.v1 import events_pb2 as intake_events
from v2v.logistics.v1 import logistics_service_pb2 as log_pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as log_grpc
from v2v.manufacturing.events.v1 import events_pb2 as mfg_events
from v2v.release.v1 import release_service_pb2 as rel_pb
from v2v.release.v1 import release_service_pb2_grpc as rel_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope import ChainVerifier, KeyRing, Location, decode
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.kafka_topics import read_topic
from v2v_platform.testing.processes import ServiceProcess, fresh_database, start_service
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually

pytestmark = pytest.mark.integration
HOSPITAL, GMP, COURIERS = "HOSP-A", "GMP-B", "LOGI-1"
QP = ("qp-1", "Quentin Pharmacist")
PHYSICIAN = ("dr-1", "Dr Petra Physician")
PASSWORD = "correct horse battery"
NURSE_1 = Operator(user_id="n-1", printed_name="Nurse One")
NURSE_2 = Operator(user_id="n-2", printed_name="Nurse Two")
NURSE_PASSWORDS = {"n-1": "nurse one's own password", "n-2": "nurse two's own password"}
"""Each nurse's own password (infusion's signer store, signer role "nurse")."""
ANALYST = Operator(user_id="qc-7", printed_name="Ana Lyst")
GMP_OPERATOR = Operator(user_id="m-1", printed_name="GMP Operator")
PRE_RELEASE = [
    ("viability", "flow cytometry", "88", "%"),
    ("cd3", "flow cytometry", "95", "%"),
    ("car", "flow cytometry", "41", "%"),
    ("dose", "calculation", "1.2", "10^6 CAR+ cells/kg"),
    ("endotoxin", "LAL", "0.1", "EU/mL"),
    ("mycoplasma", "PCR", "negative", ""),
]


@dataclass
class System:
    pki: Path
    logistics: ServiceProcess
    release: ServiceProcess
    infusion: ServiceProcess
    kafka: str

    def stub(self, stub_class: Any, process: ServiceProcess, site: str) -> Any:
        credentials = channel_credentials(SiteTlsFiles.for_site(self.pki, site))
        return stub_class(secure_channel(process.grpc_target, credentials))


def _add_signer(
    module_env: dict[str, str], site: str, who: tuple[str, str], role: str, password: str = PASSWORD
) -> None:
    env = {**os.environ, **module_env, "V2V_SIGNER_PASSWORD": password}
    command = [sys.executable, "-m", "v2v_platform.cli", "signer", "add", "--site", site]
    command += ["--user", who[0], "--name", who[1], "--role", role]
    subprocess.run(command, env=env, check=True, capture_output=True)


@pytest.fixture
def system(tmp_path: Path, kafka_bootstrap: str, postgres_database: Any) -> Iterator[System]:
    pki = tmp_path / "pki"
    sites = [f"{HOSPITAL}:collection,infusion", f"{GMP}:manufacturing,qc", f"{COURIERS}:courier"]
    init_pki(pki, [parse_site_spec(spec) for spec in sites])
    common = {"V2V_PKI_DIR": str(pki), "V2V_KAFKA_BOOTSTRAP": kafka_bootstrap}
    name = postgres_database.dbname

    def service(module: str, site: str, suffix: str) -> dict[str, str]:
        dsn = fresh_database(postgres_database.dsn, f"{name}_{suffix}")
        return {**common, "V2V_SITE_ID": site, "V2V_POSTGRES_DSN": dsn}

    release_env = service("v2v_release", GMP, "rel")
    infusion_env = service("v2v_infusion", HOSPITAL, "inf")
    _add_signer(release_env, GMP, QP, "qp")
    _add_signer(infusion_env, HOSPITAL, PHYSICIAN, "physician")
    for nurse in (NURSE_1, NURSE_2):
        who = (nurse.user_id, nurse.printed_name)
        _add_signer(infusion_env, HOSPITAL, who, "nurse", NURSE_PASSWORDS[nurse.user_id])
    processes = [
        start_service("v2v_logistics", service("v2v_logistics", COURIERS, "log"), tmp_path),
        start_service("v2v_release", release_env, tmp_path),
        start_service("v2v_infusion", infusion_env, tmp_path),
    ]
    try:
        for process in processes:
            eventually(partial(process.healthy, pki, HOSPITAL), f"{process.module} to serve")
        logistics, release, infusion = processes
        yield System(pki, logistics, release, infusion, kafka_bootstrap)
    finally:
        stopped = {process.module: process.stop() for process in processes}
    assert set(stopped.values()) == {0}, stopped


def _publish_upstream_facts(system: System, coi: str, batch_id: str, dins: list[str]) -> None:
    """What intake's and manufacturing's relays would have published for this patient."""
    pki = system.pki
    hospital_key = SiteSigningKey.load(HOSPITAL, pki / "sites" / HOSPITAL / "signing.key")
    gmp_key = SiteSigningKey.load(GMP, pki / "sites" / GMP / "signing.key")
    intake = SignedEnvelopeProducer(
        system.kafka, "v2v.intake.events.v1", hospital_key, Actor("n-1", "Nurse One", "collection")
    )
    intake.publish(
        coi,
        intake_events.PatientEnrolled(
            coi=coi,
            patient_pseudonym=f"PSN-{uuid4()}",
            enrolling_site_id=HOSPITAL,
            treating_site_id=HOSPITAL,
        ),
    )
    intake.close()
    manufacturing = SignedEnvelopeProducer(
        system.kafka,
        "v2v.manufacturing.events.v1",
        gmp_key,
        Actor("m-1", "GMP Operator", "manufacturing"),
        aggregate_type="Batch",
    )
    started = datetime.now(UTC) - timedelta(days=9)
    manufacturing.publish(
        coi,
        mfg_events.BatchStarted(
            coi=coi,
            batch_id=batch_id,
            manufacturing_site_id=GMP,
            input_dins=[],
            started_at=timestamp(started),
            fresh_window_hours=48,
        ),
    )
    manufacturing.publish(
        coi,
        mfg_events.ProductUnitsCreated(
            coi=coi,
            batch_id=batch_id,
            product_dins=dins,
            input_dins=[],
            hold_condition=CONDITION_FRESH_COLD,
            created_at=timestamp(started + timedelta(days=8)),
        ),
    )
    manufacturing.close()


def _signature(who: tuple[str, str], meaning: str) -> ESignatureRequest:
    return ESignatureRequest(user_id=who[0], password=PASSWORD, meaning=meaning)


def _known(call: Any, what: str) -> Any:
    """Retry `call` while the service has not yet learnt the facts from Kafka (NOT_FOUND, or
    logistics' FAILED_PRECONDITION "unknown-unit")."""

    def probe() -> Any:
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            if (error.details() or "").startswith("unknown-unit"):
                return None
            raise

    return eventually(probe, what)


def _certify_provisionally(system: System, batch_id: str) -> None:
    qc = system.stub(rel_grpc.ReleaseServiceStub, system.release, GMP)
    for test, method, value, unit in PRE_RELEASE:
        request = rel_pb.RecordQcResultRequest(
            operator=ANALYST,
            batch_id=batch_id,
            test=test,
            method=method,
            value=value,
            unit=unit,
            result_at=timestamp(datetime.now(UTC) - timedelta(hours=2)),
            analyst=ANALYST,
        )
        reply = _known(lambda r=request: qc.RecordQcResult(r, timeout=5), "the batch at release")
        assert reply.passed, (test, reply)
    with pytest.raises(grpc.RpcError) as wrong_password:
        qc.CertifyProvisionally(
            rel_pb.CertifyProvisionallyRequest(
                operator=ANALYST,
                batch_id=batch_id,
                signature=ESignatureRequest(user_id=QP[0], password="wrong", meaning="approval"),
            ),
            timeout=5,
        )
    assert wrong_password.value.code() == grpc.StatusCode.UNAUTHENTICATED
    certified = qc.CertifyProvisionally(
        rel_pb.CertifyProvisionallyRequest(
            operator=ANALYST, batch_id=batch_id, signature=_signature(QP, "approval")
        ),
        timeout=10,
    ).release
    assert certified.status == "provisionally-certified"
    assert set(certified.pending_tests) == {"sterility", "vcn", "rcl"}
    [decision] = certified.decisions
    assert (decision.signature.printed_name, decision.signature.meaning) == (QP[1], "approval")
    assert len(decision.signature.record_hash) == 64


def _ship(system: System, dins: list[str], coi: str) -> None:
    """GMP -> courier -> treating site, every bag scanned at every handoff."""
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "v2v_logistics",
            "issue-courier-token",
            "--courier",
            "C-9",
            "--name",
            "Kim Courier",
            "--site",
            GMP,
        ],
        env={**os.environ, **system.logistics.env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    gmp = system.stub(log_grpc.LogisticsServiceStub, system.logistics, GMP)
    hospital = system.stub(log_grpc.LogisticsServiceStub, system.logistics, HOSPITAL)
    create = log_pb.CreateShipmentRequest(
        operator=GMP_OPERATOR,
        manifest_dins=dins,
        condition=CONDITION_FRESH_COLD,
        destination_site_id=HOSPITAL,
        shipper_id="SHIPPER-2",
        data_logger_id="LOGGER-7",
        courier_id="C-9",
    )
    shipment = _known(lambda: gmp.CreateShipment(create, timeout=10), "products at logistics")
    shipment_id = shipment.shipment.shipment_id
    assert shipment.shipment.coi == coi
    courier = httpx.Client(
        base_url=f"{system.logistics.http_base}/v1/courier/shipments/{shipment_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    for din in dins:
        scanned = courier.post("/scans", json=_scan(f"site:{GMP}", label=din))
        assert scanned.status_code == 200, scanned.text
    handed = courier.post("/handoff", json=_scan(f"site:{GMP}"))
    assert handed.status_code == 200, handed.text
    offered = courier.post(  # the holder offers; the destination then takes it
        "/offer",
        json={
            "idempotency_key": str(uuid4()),
            "scanned_at": datetime.now(UTC).isoformat(),
            "to_party": f"site:{HOSPITAL}",
        },
    )
    assert offered.status_code == 200, offered.text
    delivered = hospital.ReceiveShipment(
        log_pb.ReceiveShipmentRequest(
            operator=NURSE_1,
            shipment_id=shipment_id,
            scanned_labels=dins,
            from_party="courier:C-9",
        ),
        timeout=10,
    ).shipment
    assert delivered.custodian == f"site:{HOSPITAL}"


def _scan(from_party: str, **body: str) -> dict[str, str]:
    return {
        "idempotency_key": str(uuid4()),
        "scanned_at": datetime.now(UTC).isoformat(),
        "from_party": from_party,
        **body,
    }


def _signed(nurse: Operator, meaning: str) -> ESignatureRequest:
    """`nurse` re-authenticating with their own password."""
    password = NURSE_PASSWORDS[nurse.user_id]
    return ESignatureRequest(user_id=nurse.user_id, password=password, meaning=meaning)


def _bedside(ward: Any, coi: str, din: str, nurse: Operator) -> Any:
    return ward.ScanAtBedside(
        inf_pb.ScanAtBedsideRequest(
            operator=nurse,
            wristband_coi=coi,
            din=din,
            scanned_at=timestamp(datetime.now(UTC)),
            signature=_signed(nurse, "verification"),
        ),
        timeout=5,
    )


def _infuse(ward: Any, coi: str, din: str) -> None:
    def released() -> Any:
        unit = ward.GetProductUnit(inf_pb.GetProductUnitRequest(din=din), timeout=5).unit
        return unit if unit.release_status == "provisional" else None

    _known(released, "the provisional certification at the infusion site")
    ward.ReceiveProduct(
        inf_pb.ReceiveProductRequest(
            operator=NURSE_1, din=din, received_at=timestamp(datetime.now(UTC))
        ),
        timeout=5,
    )
    assert _bedside(ward, coi, din, NURSE_1).outcome == "first-scan-recorded"
    with pytest.raises(grpc.RpcError) as same_nurse:
        _bedside(ward, coi, din, NURSE_1)
    assert same_nurse.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _bedside(ward, coi, din, NURSE_2).outcome == "verified"
    infused = ward.AdministerInfusion(
        inf_pb.AdministerInfusionRequest(
            operator=NURSE_1,
            din=din,
            administered_at=timestamp(datetime.now(UTC)),
            dose_car_cells_per_kg=1.0e6,
            volume_ml=68.0,
            witnessed_by=NURSE_2,
            witness_signature=_signed(NURSE_2, "witness"),
        ),
        timeout=5,
    ).unit
    assert infused.status == "infused"


def test_a_failure_after_provisional_release_reaches_the_bedside_within_two_seconds(
    system: System,
) -> None:
    coi = issue_coi("A1234", 26, random.randint(1, 999_999)).value
    dins = [str(issue_din("B1234", 26, random.randint(1, 999_999))) for _ in range(2)]
    batch_id = str(uuid4())
    _publish_upstream_facts(system, coi, batch_id, dins)
    _certify_provisionally(system, batch_id)
    _ship(system, dins, coi)
    ward = system.stub(inf_grpc.InfusionServiceStub, system.infusion, HOSPITAL)
    _infuse(ward, coi, dins[0])

    qc = system.stub(rel_grpc.ReleaseServiceStub, system.release, GMP)
    sterility = rel_pb.RecordQcResultRequest(
        operator=ANALYST,
        batch_id=batch_id,
        test="sterility",
        method="BacT/ALERT",
        value="positive",
        unit="",
        result_at=timestamp(datetime.now(UTC)),
        analyst=ANALYST,
    )
    failure_id = qc.RecordQcResult(sterility, timeout=5).post_release_failure_id
    recorded_at = time.monotonic()
    assert failure_id

    def alert() -> Any:
        alerts = ward.ListAlerts(inf_pb.ListAlertsRequest(unacknowledged_only=True), timeout=5)
        return next((a for a in alerts.alerts if a.failure_id == failure_id), None)

    seen = eventually(alert, "the post-release failure alert at the infusion site", 10)
    delay_s = time.monotonic() - recorded_at
    print(f"\npost-release failure visible at the infusion site after {delay_s * 1000:.0f} ms")
    assert delay_s <= 2.0, f"the alert took {delay_s:.2f} s (requirement: within 2 s)"
    assert (seen.coi, seen.test, sorted(seen.product_dins)) == (coi, "sterility", sorted(dins))

    ward.ReceiveProduct(
        inf_pb.ReceiveProductRequest(
            operator=NURSE_1, din=dins[1], received_at=timestamp(datetime.now(UTC))
        ),
        timeout=5,
    )
    with pytest.raises(grpc.RpcError) as blocked:
        _bedside(ward, coi, dins[1], NURSE_1)
    assert "unacknowledged" in (blocked.value.details() or "")
    acknowledged = ward.AcknowledgeAlert(
        inf_pb.AcknowledgeAlertRequest(
            operator=Operator(user_id=PHYSICIAN[0], printed_name=PHYSICIAN[1]),
            failure_id=failure_id,
            decision="do not infuse the second bag; start antibiotics",
            signature=_signature(PHYSICIAN, "responsibility"),
        ),
        timeout=5,
    ).alert
    assert acknowledged.acknowledged
    assert acknowledged.physician_signature.printed_name == PHYSICIAN[1]

    _verify_topics(system, coi)


def _verify_topics(system: System, coi: str) -> None:
    ring = KeyRing.load(system.pki / "signing-keys.json")
    wanted = {
        "v2v.release.events.v1": {"ProvisionallyCertified", "PostReleaseFailureRecorded"},
        "v2v.infusion.events.v1": {"InfusionAdministered", "PostReleaseFailureAcknowledged"},
    }
    verifier = ChainVerifier(ring)
    for topic, needed in wanted.items():

        def published(topic: str = topic, needed: set[str] = needed) -> Any:
            records = read_topic(system.kafka, topic, lambda r: r.key == coi.encode())
            types = {decode(r.value).event_type.rsplit(".", 1)[-1] for _, r in records}
            return records if needed <= types else None

        records = eventually(published, f"{topic} events of the COI")
        breaks = [b for loc, r in records for b in verifier.feed_bytes(r.value, loc)]
        assert breaks == [], breaks
        assert all(isinstance(loc, Location) for loc, _ in records)
