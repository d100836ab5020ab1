"""The gRPC and HTTP adapters over one application: mTLS roles, status codes, problem+json
(with the reason code of a refused scan), e-signatures over both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as pb_grpc
from v2v_infusion.adapters.grpc_api import ACCESS, REQUIRED_ROLES, SERVICE_NAME
from v2v_infusion.bootstrap import InfusionService, bootstrap
from v2v_infusion.settings import InfusionSettings
from v2v_platform.access_policy import Access, Relation
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.identity import Role
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_testkit.infusion import (
    COI,
    OTHER_COI,
    OTHER_SITE,
    PASSWORD,
    PHYSICIAN_ID,
    PHYSICIAN_NAME,
    SITE,
    Clock,
    InMemoryFacts,
    password_of,
    physician_store,
    product_din,
)

AUDITOR, GMP = "AUDIT-1", "GMP-B"
SITES = [
    f"{SITE}:infusion",
    f"{OTHER_SITE}:infusion",
    f"{AUDITOR}:auditor",
    f"{GMP}:manufacturing",
]
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")
NED = Operator(user_id="u-nurse-2", printed_name="Ned Nurse")
DOCTOR = Operator(user_id=PHYSICIAN_ID, printed_name=PHYSICIAN_NAME)


def signed(who: Operator, meaning: str = "verification", password: str = "") -> ESignatureRequest:
    """`who`'s re-authentication (their own password unless given)."""
    given = password or password_of(who.user_id)
    return ESignatureRequest(user_id=who.user_id, password=given, meaning=meaning)


def signed_body(who: dict[str, str], meaning: str = "verification") -> dict[str, str]:
    password = password_of(who["user_id"])
    return {"user_id": who["user_id"], "password": password, "meaning": meaning}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    return directory


@pytest.fixture
def service(pki: Path) -> Iterator[tuple[InfusionService, InMemoryFacts]]:
    facts = InMemoryFacts()
    facts.enrol()
    facts.release()
    facts.create_products([product_din(n) for n in (1, 2)])
    settings = InfusionSettings(site_id=SITE, pki_dir=pki)
    running = bootstrap(settings, facts=facts, signers=physician_store(), clock=Clock())
    running.start_grpc("127.0.0.1:0")
    yield running, facts
    running.stop()


def stub(pki: Path, service: InfusionService, site: str) -> Any:
    assert service.grpc is not None
    channel = secure_channel(
        f"127.0.0.1:{service.grpc.port}", channel_credentials(SiteTlsFiles.for_site(pki, site))
    )
    return pb_grpc.InfusionServiceStub(channel), channel


def status_of(call: Any, request: Any) -> Any:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=5)
    return raised.value.code(), raised.value.details()


def test_grpc_receipt_bedside_infusion_and_alert(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    running, facts = service
    ward, ward_channel = stub(pki, running, SITE)
    audit, audit_channel = stub(pki, running, AUDITOR)
    gmp, gmp_channel = stub(pki, running, GMP)
    din = product_din(1)
    with ward_channel, audit_channel, gmp_channel:
        receipt = pb.ReceiveProductRequest(operator=NORA, din=din)
        assert status_of(gmp.ReceiveProduct, receipt)[0] == grpc.StatusCode.PERMISSION_DENIED
        assert status_of(audit.ReceiveProduct, receipt)[0] == grpc.StatusCode.PERMISSION_DENIED
        unit = ward.ReceiveProduct(receipt, timeout=5).unit
        assert (unit.coi, unit.status, unit.release_status) == (COI, "received", "provisional")
        assert unit.condition == Condition.CONDITION_FRESH_COLD
        stored = ward.StoreProduct(
            pb.StoreProductRequest(operator=NORA, din=din, location="FRIDGE-2"), timeout=5
        ).unit
        assert stored.storage_location == "FRIDGE-2"
        thaw = pb.StartThawRequest(operator=NORA, din=din)
        code, details = status_of(ward.StartThaw, thaw)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "only cryo" in details

        wrong = pb.ScanAtBedsideRequest(
            operator=NORA, wristband_coi=OTHER_COI, din=din, signature=signed(NORA)
        )
        code, details = status_of(ward.ScanAtBedside, wrong)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "coi-mismatch" in details
        first = pb.ScanAtBedsideRequest(
            operator=NORA, wristband_coi=COI, din=din, signature=signed(NORA)
        )
        assert ward.ScanAtBedside(first, timeout=5).outcome == "first-scan-recorded"
        code, details = status_of(ward.ScanAtBedside, first)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "same-user" in details
        second = pb.ScanAtBedsideRequest(
            operator=NED, wristband_coi=COI, din=din, signature=signed(NED)
        )
        verified = ward.ScanAtBedside(second, timeout=5)
        assert verified.outcome == "verified" and verified.unit.HasField("infuse_by")

        infusion = pb.AdministerInfusionRequest(
            operator=NORA,
            din=din,
            dose_car_cells_per_kg=0,
            volume_ml=60,
            witnessed_by=NED,
            witness_signature=signed(NED, "witness"),
        )
        code, _ = status_of(ward.AdministerInfusion, infusion)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        infusion.dose_car_cells_per_kg = 1.0e6
        infused = ward.AdministerInfusion(infusion, timeout=5).unit
        assert infused.status == "infused" and infused.HasField("administered_at")
        event = pb.RecordAdverseEventRequest(operator=NORA, din=din, kind="crs", grade=1)
        assert [e.kind for e in ward.RecordAdverseEvent(event, timeout=5).unit.adverse_events] == [
            "crs"
        ]

        facts.fail(dins=[din])
        [alert] = audit.ListAlerts(pb.ListAlertsRequest(unacknowledged_only=True), timeout=5).alerts
        assert (alert.failure_id, alert.test, alert.acknowledged) == (
            "failure-1",
            "sterility",
            False,
        )
        ack = pb.AcknowledgeAlertRequest(
            operator=DOCTOR,
            failure_id="failure-1",
            decision="monitor for sepsis",
            signature=ESignatureRequest(
                user_id=PHYSICIAN_ID, password="wrong password", meaning="responsibility"
            ),
        )
        assert status_of(ward.AcknowledgeAlert, ack)[0] == grpc.StatusCode.UNAUTHENTICATED
        assert status_of(audit.AcknowledgeAlert, ack)[0] == grpc.StatusCode.PERMISSION_DENIED
        ack.signature.password = PASSWORD
        acknowledged = ward.AcknowledgeAlert(ack, timeout=5).alert
        assert acknowledged.acknowledged and acknowledged.decision == "monitor for sepsis"
        signature = acknowledged.physician_signature
        assert (signature.printed_name, signature.meaning) == (PHYSICIAN_NAME, "responsibility")
        assert len(signature.record_hash) == 64
        assert not audit.ListAlerts(pb.ListAlertsRequest(unacknowledged_only=True)).alerts

        got = audit.GetProductUnit(pb.GetProductUnitRequest(din=din), timeout=5).unit
        assert (got.status, list(got.unacknowledged_failure_ids)) == ("infused", [])
        missing = pb.GetProductUnitRequest(din=product_din(50))
        assert status_of(audit.GetProductUnit, missing)[0] == grpc.StatusCode.NOT_FOUND
        health = health_pb2_grpc.HealthStub(ward_channel)
        request = health_pb2.HealthCheckRequest(service="v2v.infusion.v1.InfusionService")
        assert health.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_bedside_persons_are_proven(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    """Issue 13 item 2: no bedside scan and no witness without the person's own
    re-authentication; what one nurse sends as the other verifies and infuses nothing."""
    running, _ = service
    ward, channel = stub(pki, running, SITE)
    din = product_din(1)
    with channel:
        ward.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=5)

        def scan(operator: Operator, **signature: Any) -> Any:
            return pb.ScanAtBedsideRequest(
                operator=operator, wristband_coi=COI, din=din, **signature
            )

        assert ward.ScanAtBedside(scan(NORA, signature=signed(NORA)), timeout=5).outcome == (
            "first-scan-recorded"
        )
        refusals = [
            (scan(NED), grpc.StatusCode.INVALID_ARGUMENT, "signature is required"),
            (
                scan(NED, signature=signed(NED, password=password_of(NORA.user_id))),
                grpc.StatusCode.UNAUTHENTICATED,
                "re-authentication of 'u-nurse-2' failed",
            ),
            (
                scan(NED, signature=signed(NORA)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "operator.user_id 'u-nurse-2' is not the re-authenticated signer 'u-nurse'",
            ),
            (
                scan(DOCTOR, signature=signed(DOCTOR)),
                grpc.StatusCode.PERMISSION_DENIED,
                "may not sign as nurse",
            ),
        ]
        for request, code, details in refusals:
            got_code, got_details = status_of(ward.ScanAtBedside, request)
            assert got_code == code and details in got_details
        unit = ward.GetProductUnit(pb.GetProductUnitRequest(din=din), timeout=5).unit
        assert unit.status == "first-scan-recorded"
        assert ward.ScanAtBedside(scan(NED, signature=signed(NED)), timeout=5).outcome == (
            "verified"
        )
        infusion = pb.AdministerInfusionRequest(
            operator=NORA, din=din, dose_car_cells_per_kg=1.0e6, volume_ml=60, witnessed_by=NED
        )
        unwitnessed = [
            (infusion, grpc.StatusCode.INVALID_ARGUMENT, "witness_signature is required"),
            (
                with_witness(infusion, signed(NED, "witness", password="guessed password")),
                grpc.StatusCode.UNAUTHENTICATED,
                "re-authentication of 'u-nurse-2' failed",
            ),
            (
                with_witness(infusion, signed(NORA, "witness")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "witnessed_by.user_id 'u-nurse-2' is not the re-authenticated signer 'u-nurse'",
            ),
        ]
        for request, code, details in unwitnessed:
            got_code, got_details = status_of(ward.AdministerInfusion, request)
            assert got_code == code and details in got_details
        unit = ward.GetProductUnit(pb.GetProductUnitRequest(din=din), timeout=5).unit
        assert unit.status == "verified"
        witnessed = with_witness(infusion, signed(NED, "witness"))
        assert ward.AdministerInfusion(witnessed, timeout=5).unit.status == "infused"


def with_witness(
    request: pb.AdministerInfusionRequest, signature: ESignatureRequest
) -> pb.AdministerInfusionRequest:
    copy = pb.AdministerInfusionRequest()
    copy.CopyFrom(request)
    copy.witness_signature.CopyFrom(signature)
    return copy


def test_grpc_missing_operator_is_invalid(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    running, _ = service
    ward, channel = stub(pki, running, SITE)
    with channel:
        request = pb.ReceiveProductRequest(din=product_din(1))
        assert status_of(ward.ReceiveProduct, request)[0] == grpc.StatusCode.INVALID_ARGUMENT


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def test_http_routes_problems_and_openapi(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    ward = auth(pki, SITE)
    nora = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}
    ned = {"user_id": "u-nurse-2", "printed_name": "Ned Nurse"}
    din = product_din(2)
    assert client.post(f"/v1/units/{din}/receipt", json={"operator": nora}).status_code == 401
    forbidden = client.post(
        f"/v1/units/{din}/receipt", json={"operator": nora}, headers=auth(pki, GMP)
    )
    assert forbidden.status_code == 403
    unknown = client.post(
        f"/v1/units/{product_din(77)}/receipt", json={"operator": nora}, headers=ward
    )
    assert unknown.status_code == 409
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["reason_code"] == "unknown-unit"
    received = client.post(f"/v1/units/{din}/receipt", json={"operator": nora}, headers=ward)
    assert received.status_code == 201 and received.json()["status"] == "received"
    assert (
        client.post("/v1/bedside-scans", json={"operator": nora}, headers=ward).status_code == 422
    )
    scan: dict[str, Any] = {
        "operator": nora,
        "wristband_coi": OTHER_COI,
        "din": din,
        "signature": signed_body(nora),
    }
    refused = client.post("/v1/bedside-scans", json=scan, headers=ward)
    assert refused.status_code == 409 and refused.json()["reason_code"] == "coi-mismatch"
    scan["wristband_coi"] = COI
    assert client.post("/v1/bedside-scans", json=scan, headers=ward).json()["outcome"] == (
        "first-scan-recorded"
    )
    by_ned = {**scan, "operator": ned, "signature": signed_body(ned)}
    verified = client.post("/v1/bedside-scans", json=by_ned, headers=ward)
    assert verified.json()["outcome"] == "verified"
    facts.fail("failure-2", dins=[din])  # raised after verification: infusion refused
    infusion = {
        "operator": nora,
        "dose_car_cells_per_kg": 1.0e6,
        "volume_ml": 55.0,
        "witnessed_by": ned,
        "witness_signature": signed_body(ned, "witness"),
    }
    blocked = client.post(f"/v1/units/{din}/infusion", json=infusion, headers=ward)
    assert blocked.status_code == 409 and blocked.json()["reason_code"] == "unacknowledged-failure"
    alerts = client.get("/v1/alerts?unacknowledged_only=true", headers=auth(pki, AUDITOR)).json()
    assert [a["failure_id"] for a in alerts["alerts"]] == ["failure-2"]
    acknowledgement = {
        "operator": {"user_id": PHYSICIAN_ID, "printed_name": PHYSICIAN_NAME},
        "decision": "infuse with antibiotic cover",
        "signature": {"user_id": PHYSICIAN_ID, "password": "nope nope", "meaning": "approval"},
    }
    path = "/v1/alerts/failure-2/acknowledgement"
    assert client.post(path, json=acknowledgement, headers=ward).status_code == 401
    acknowledgement["signature"]["password"] = PASSWORD  # type: ignore[index]
    acknowledged = client.post(path, json=acknowledgement, headers=ward)
    assert acknowledged.status_code == 201
    assert acknowledged.json()["physician_signature"]["printed_name"] == PHYSICIAN_NAME
    infused = client.post(f"/v1/units/{din}/infusion", json=infusion, headers=ward)
    assert infused.status_code == 201 and infused.json()["status"] == "infused"
    adverse = {"operator": nora, "kind": "icans", "grade": 2, "notes": "confusion"}
    recorded = client.post(f"/v1/units/{din}/adverse-events", json=adverse, headers=ward)
    assert recorded.status_code == 201
    unit = client.get(f"/v1/units/{din}", headers=auth(pki, AUDITOR)).json()
    assert unit["adverse_events"][0]["grade"] == 2 and unit["release_status"] == "provisional"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/units/{din}/thaw", "/v1/units/{din}/storage", "/v1/alerts"} <= set(paths)


def test_grpc_another_treating_site_reads_nothing_recorded_here(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    running, facts = service
    din = product_din(1)
    facts.fail(dins=[din])
    ward, ward_channel = stub(pki, running, SITE)
    other, other_channel = stub(pki, running, OTHER_SITE)
    with ward_channel, other_channel:
        ward.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=5)
        unit = pb.GetProductUnitRequest(din=din)
        assert ward.GetProductUnit(unit, timeout=5).unit.status == "received"
        assert status_of(other.GetProductUnit, unit)[0] == grpc.StatusCode.NOT_FOUND
        expected = pb.GetProductUnitRequest(din=product_din(2))
        assert status_of(other.GetProductUnit, expected)[0] == grpc.StatusCode.NOT_FOUND
        alerts = pb.ListAlertsRequest()
        assert [a.failure_id for a in ward.ListAlerts(alerts, timeout=5).alerts] == ["failure-1"]
        assert list(other.ListAlerts(alerts, timeout=5).alerts) == []


def test_http_another_treating_site_reads_nothing_recorded_here(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    din = product_din(1)
    facts.fail(dins=[din])
    nora = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}
    ward, other = auth(pki, SITE), auth(pki, OTHER_SITE)
    received = client.post(f"/v1/units/{din}/receipt", json={"operator": nora}, headers=ward)
    assert received.status_code == 201
    assert client.get(f"/v1/units/{din}", headers=ward).json()["status"] == "received"
    for unit in (din, product_din(2)):
        foreign = client.get(f"/v1/units/{unit}", headers=other)
        assert foreign.status_code == 404
        assert foreign.headers["content-type"] == "application/problem+json"
    assert len(client.get("/v1/alerts", headers=ward).json()["alerts"]) == 1
    assert client.get("/v1/alerts", headers=other).json() == {"alerts": []}


def test_every_method_and_route_declares_its_access(
    service: tuple[InfusionService, InMemoryFacts],
) -> None:
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["InfusionService"].methods}
    assert set(ACCESS) == methods
    assert {
        f"/{SERVICE_NAME}/{name}": access.roles for name, access in ACCESS.items()
    } == REQUIRED_ROLES
    writes = {name for name, access in ACCESS.items() if access.writes}
    assert all(ACCESS[name].relation is Relation.OWN_SITE for name in writes)
    assert all(Role.AUDITOR not in ACCESS[name].roles for name in writes)
    assert ACCESS["GetProductUnit"].relation is Relation.PATIENT
    assert ACCESS["ListAlerts"].relation is Relation.FILTERED
    app = service[0].http_app
    operations = [
        operation
        for path in app.openapi()["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "responses" in operation
    ]
    declared = [Access.from_openapi(operation) for operation in operations]
    assert None not in declared and len(declared) == len(ACCESS)
    assert set(declared) == set(ACCESS.values())


def test_another_site_may_not_write_at_this_wards_service(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    running, _ = service
    din = product_din(1)
    other, channel = stub(pki, running, OTHER_SITE)
    with channel:
        receipt = pb.ReceiveProductRequest(operator=NORA, din=din)
        assert status_of(other.ReceiveProduct, receipt)[0] == grpc.StatusCode.PERMISSION_DENIED
        scan = pb.ScanAtBedsideRequest(operator=NORA, wristband_coi=COI, din=din)
        assert status_of(other.ScanAtBedside, scan)[0] == grpc.StatusCode.PERMISSION_DENIED
    client = TestClient(running.http_app, raise_server_exceptions=False)
    nora = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}
    refused = client.post(
        f"/v1/units/{din}/receipt", json={"operator": nora}, headers=auth(pki, OTHER_SITE)
    )
    assert refused.status_code == 403
    assert running.app.recorder.max_notification_id() in (None, 0)


def test_a_unit_infused_elsewhere_is_refused_storage_over_http_with_its_reason(
    pki: Path, service: tuple[InfusionService, InMemoryFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    ward = auth(pki, SITE)
    nora = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}
    din = product_din(1)
    assert client.post(f"/v1/units/{din}/receipt", json={"operator": nora}, headers=ward).is_success
    facts.infuse(din, OTHER_SITE)
    body = {"operator": nora, "location": "FRIDGE-1"}
    refused = client.post(f"/v1/units/{din}/storage", json=body, headers=ward)
    assert refused.status_code == 409 and refused.json()["reason_code"] == "already-infused"
