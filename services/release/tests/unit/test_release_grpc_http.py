"""The gRPC and HTTP adapters over one application: mTLS roles, status codes for refusals and
re-authentication, problem+json, and signatures shown with their manifestation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.release.v1 import release_service_pb2 as pb
from v2v.release.v1 import release_service_pb2_grpc as pb_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.proto_values import timestamp
from v2v_release.bootstrap import ReleaseService, bootstrap
from v2v_release.settings import ReleaseSettings
from v2v_testkit.release import (
    BATCH_ID,
    OTHER_BATCH_ID,
    PASSING,
    PASSWORD,
    PHYSICIAN_USER,
    PRE_RELEASE,
    QC_SITE,
    QP_USER,
    STARTED_AT,
    TREATING_SITE,
    Clock,
    InMemoryReleaseFacts,
    signers,
)

SITES = [f"{QC_SITE}:qc", f"{TREATING_SITE}:infusion", "HOSP-C:infusion", "AUDIT-1:auditor"]
OPERATOR = Operator(user_id="u-analyst", printed_name="Ann Analyst")
ANALYST = Operator(user_id="u-lab", printed_name="Lee Lab")
RESULT_AT = STARTED_AT + timedelta(days=8)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    return directory


@pytest.fixture
def facts() -> InMemoryReleaseFacts:
    known = InMemoryReleaseFacts()
    known.started()
    known.harvested()
    known.enrolled()
    return known


@pytest.fixture
def service(pki: Path, facts: InMemoryReleaseFacts) -> Iterator[ReleaseService]:
    settings = ReleaseSettings(site_id=QC_SITE, pki_dir=pki)
    running = bootstrap(settings, facts=facts, signer_store=signers(), clock=Clock())
    running.start_grpc("127.0.0.1:0")
    yield running
    running.stop()


def stub(pki: Path, service: ReleaseService, site: str) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.ReleaseServiceStub(channel), channel


def status_of(call: Any, request: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=5)
    return raised.value.code(), raised.value.details()


def result_request(
    test: str, value: str = "", batch_id: str = BATCH_ID
) -> pb.RecordQcResultRequest:
    passing, unit, method = PASSING[test]
    return pb.RecordQcResultRequest(
        operator=OPERATOR,
        batch_id=batch_id,
        test=test,
        method=method,
        value=value or passing,
        unit=unit,
        result_at=timestamp(RESULT_AT),
        analyst=ANALYST,
    )


def qp(password: str = PASSWORD) -> ESignatureRequest:
    return ESignatureRequest(user_id=QP_USER, password=password, meaning="approval")


def test_grpc_provisional_release_then_post_release_failure(
    pki: Path, service: ReleaseService
) -> None:
    qc, qc_channel = stub(pki, service, QC_SITE)
    ward, ward_channel = stub(pki, service, TREATING_SITE)
    with qc_channel, ward_channel:
        for test in PRE_RELEASE:
            assert qc.RecordQcResult(result_request(test), timeout=5).passed
        assert status_of(ward.RecordQcResult, result_request("vcn"))[0] == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        certify = pb.CertifyProvisionallyRequest(
            operator=OPERATOR, batch_id=BATCH_ID, signature=qp("not the password")
        )
        code, details = status_of(qc.CertifyProvisionally, certify)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "re-authentication" in details
        certify.signature.CopyFrom(
            ESignatureRequest(user_id="u-analyst", password=PASSWORD, meaning="approval")
        )
        assert status_of(qc.CertifyProvisionally, certify)[0] == grpc.StatusCode.PERMISSION_DENIED
        certify.signature.CopyFrom(qp())
        release = qc.CertifyProvisionally(certify, timeout=5).release
        assert release.status == "provisionally-certified"
        assert release.condition == Condition.CONDITION_FRESH_COLD
        [decision] = release.decisions
        assert decision.signature.printed_name == "Dr. Quinn Person"
        assert (
            decision.signature.meaning == "approval" and len(decision.signature.record_hash) == 64
        )
        failing = qc.RecordQcResult(result_request("sterility", "positive"), timeout=5)
        assert failing.post_release_failure_id == failing.result_id and not failing.passed
        assert list(failing.pending_tests) == ["vcn", "rcl"]
        read = ward.GetBatchRelease(pb.GetBatchReleaseRequest(batch_id=BATCH_ID), timeout=5)
        assert list(read.release.post_release_failure_ids) == [failing.result_id]
        stranger, stranger_channel = stub(pki, service, "HOSP-C")  # treats other patients
        with stranger_channel:
            request = pb.GetBatchReleaseRequest(batch_id=BATCH_ID)
            assert status_of(stranger.GetBatchRelease, request)[0] == grpc.StatusCode.NOT_FOUND
        final = pb.CertifyFinallyRequest(operator=OPERATOR, batch_id=BATCH_ID, signature=qp())
        code, details = status_of(qc.CertifyFinally, final)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "post-release failure" in details


def test_grpc_oos_acceptance_by_the_treating_site(pki: Path, service: ReleaseService) -> None:
    qc, qc_channel = stub(pki, service, QC_SITE)
    ward, ward_channel = stub(pki, service, TREATING_SITE)
    other, other_channel = stub(pki, service, "HOSP-C")
    with qc_channel, ward_channel, other_channel:
        for test in PRE_RELEASE:
            qc.RecordQcResult(result_request(test, "60" if test == "viability" else ""), timeout=5)
        justify = pb.JustifyOosReleaseRequest(
            operator=OPERATOR, batch_id=BATCH_ID, justification="no alternative", signature=qp()
        )
        assert qc.JustifyOosRelease(justify, timeout=5).release.status == "oos-justified"
        doctor = Operator(user_id=PHYSICIAN_USER, printed_name="Dr. Tara Treat")
        signature = ESignatureRequest(
            user_id=PHYSICIAN_USER, password=PASSWORD, meaning="responsibility"
        )
        accept = pb.AcceptOosReleaseRequest(operator=doctor, batch_id=BATCH_ID, signature=signature)
        assert status_of(qc.AcceptOosRelease, accept)[0] == grpc.StatusCode.PERMISSION_DENIED
        assert status_of(other.AcceptOosRelease, accept)[0] == grpc.StatusCode.NOT_FOUND
        release = ward.AcceptOosRelease(accept, timeout=5).release
        assert release.status == "oos-released"
        assert release.decisions[-1].signature.meaning == "responsibility"


def test_grpc_reads_and_refusals(pki: Path, service: ReleaseService) -> None:
    qc, qc_channel = stub(pki, service, QC_SITE)
    auditor, auditor_channel = stub(pki, service, "AUDIT-1")
    ward, ward_channel = stub(pki, service, TREATING_SITE)
    with qc_channel, auditor_channel, ward_channel:
        specs = auditor.ListSpecifications(pb.ListSpecificationsRequest(), timeout=5)
        [v1] = specs.specifications
        assert v1.version == "v1" and len(v1.criteria) == 9
        assert [(c.test, c.method) for c in v1.criteria if c.method] == [("mycoplasma", "PCR")]
        no_specs = pb.ListSpecificationsRequest()
        assert status_of(ward.ListSpecifications, no_specs)[0] == grpc.StatusCode.PERMISSION_DENIED
        unknown = pb.GetBatchReleaseRequest(batch_id=OTHER_BATCH_ID)
        code, details = status_of(auditor.GetBatchRelease, unknown)
        assert code == grpc.StatusCode.NOT_FOUND and "not known to release yet" in details
        unit = result_request("dose")
        unit.unit = "cells"
        code, details = status_of(qc.RecordQcResult, unit)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "10^6 CAR+ cells/kg" in details
        no_time = result_request("viability")
        no_time.ClearField("result_at")
        assert status_of(qc.RecordQcResult, no_time)[0] == grpc.StatusCode.INVALID_ARGUMENT
        health = health_pb2_grpc.HealthStub(qc_channel)
        request = health_pb2.HealthCheckRequest(service="v2v.release.v1.ReleaseService")
        assert health.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def http_result(test: str, value: str = "") -> dict[str, Any]:
    passing, unit, method = PASSING[test]
    return {
        "operator": {"user_id": "u-analyst", "printed_name": "Ann Analyst"},
        "test": test,
        "method": method,
        "value": value or passing,
        "unit": unit,
        "result_at": RESULT_AT.isoformat(),
        "analyst": {"user_id": "u-lab", "printed_name": "Lee Lab"},
    }


def signed(password: str = PASSWORD, **extra: str) -> dict[str, Any]:
    return {
        "operator": {"user_id": "u-analyst", "printed_name": "Ann Analyst"},
        "signature": {"user_id": QP_USER, "password": password, "meaning": "approval"},
        **extra,
    }


def test_http_results_decisions_and_problems(pki: Path, service: ReleaseService) -> None:
    client = TestClient(service.http_app, raise_server_exceptions=False)
    qc = auth(pki, QC_SITE)
    batch = f"/v1/batches/{BATCH_ID}"
    for test in PRE_RELEASE:
        created = client.post(f"{batch}/qc-results", json=http_result(test), headers=qc)
        assert created.status_code == 201 and created.json()["passed"]
    again = client.post(f"{batch}/qc-results", json=http_result("cd3"), headers=qc)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "already has result" in again.json()["detail"]
    naive = {**http_result("vcn"), "result_at": "2025-06-10T10:00:00"}
    assert client.post(f"{batch}/qc-results", json=naive, headers=qc).status_code == 422
    wrong = client.post(f"{batch}/provisional-certification", json=signed("nope!"), headers=qc)
    assert wrong.status_code == 401 and wrong.json()["type"] == (
        "urn:v2v:problem:reauthentication-failed"
    )
    assert "nope!" not in wrong.text
    ward = auth(pki, TREATING_SITE)
    forbidden = client.post(f"{batch}/provisional-certification", json=signed(), headers=ward)
    assert forbidden.status_code == 403
    certified = client.post(f"{batch}/provisional-certification", json=signed(), headers=qc)
    assert certified.status_code == 201
    view = client.get(batch, headers=auth(pki, "AUDIT-1")).json()
    assert view["status"] == "provisionally-certified" and view["condition"] == "fresh-cold"
    [decision] = view["decisions"]
    assert set(decision["signature"]) == {
        "user_id",
        "printed_name",
        "meaning",
        "signed_at",
        "record_hash",
    }
    rejected = client.post(f"{batch}/rejection", json=signed(reason="recall"), headers=qc)
    assert rejected.status_code == 201 and rejected.json()["status"] == "rejected"
    assert client.get(batch).status_code == 401


def test_http_oos_and_specifications(pki: Path, service: ReleaseService) -> None:
    client = TestClient(service.http_app, raise_server_exceptions=False)
    qc = auth(pki, QC_SITE)
    batch = f"/v1/batches/{BATCH_ID}"
    for test in PRE_RELEASE:
        value = "0.9" if test == "endotoxin" else ""
        client.post(f"{batch}/qc-results", json=http_result(test, value), headers=qc)
    missing = client.post(f"{batch}/oos-justification", json=signed(), headers=qc)
    assert missing.status_code == 422
    justified = client.post(
        f"{batch}/oos-justification", json=signed(justification="benefit outweighs"), headers=qc
    )
    assert justified.status_code == 201 and justified.json()["failed_tests"] == ["endotoxin"]
    acceptance = {
        "operator": {"user_id": PHYSICIAN_USER, "printed_name": "Dr. Tara Treat"},
        "signature": {"user_id": PHYSICIAN_USER, "password": PASSWORD, "meaning": "responsibility"},
    }
    elsewhere = client.post(f"{batch}/oos-acceptance", json=acceptance, headers=auth(pki, "HOSP-C"))
    assert elsewhere.status_code == 404 and "visible to site HOSP-C" in elsewhere.json()["detail"]
    accepted = client.post(
        f"{batch}/oos-acceptance", json=acceptance, headers=auth(pki, TREATING_SITE)
    )
    assert accepted.status_code == 201 and accepted.json()["status"] == "oos-released"
    specs = client.get("/v1/specifications", headers=auth(pki, "AUDIT-1")).json()
    assert [s["version"] for s in specs] == ["v1"]
    assert specs[0]["criteria"][3]["criterion"] == ">= 0.5 10^6 CAR+ cells/kg"
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/batches/{batch_id}/oos-acceptance" in paths


def test_a_qc_result_time_in_2999_is_refused_over_grpc_and_http(
    pki: Path, service: ReleaseService
) -> None:
    future = result_request("viability")
    future.result_at.CopyFrom(timestamp(datetime(2999, 1, 1, tzinfo=UTC)))
    qc, channel = stub(pki, service, QC_SITE)
    with channel:
        code, details = status_of(qc.RecordQcResult, future)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("result_at 2999-01-01T00:00:00+00:00 is in the future")
    client = TestClient(service.http_app, raise_server_exceptions=False)
    body = {**http_result("viability"), "result_at": "2999-01-01T00:00:00Z"}
    refused = client.post(
        f"/v1/batches/{BATCH_ID}/qc-results", json=body, headers=auth(pki, QC_SITE)
    )
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("result_at 2999-01-01T00:00:00+00:00 is in the")
    view = client.get(f"/v1/batches/{BATCH_ID}", headers=auth(pki, QC_SITE)).json()
    assert view["results"] == []


def test_a_password_over_its_limit_is_refused_before_it_is_hashed_over_http(
    pki: Path, service: ReleaseService
) -> None:
    client = TestClient(service.http_app, raise_server_exceptions=False)
    body = {
        "operator": {"user_id": "u-analyst", "printed_name": "Ann Analyst"},
        "signature": {"user_id": QP_USER, "password": "p" * 1025, "meaning": "approval"},
    }
    refused = client.post(
        f"/v1/batches/{BATCH_ID}/provisional-certification", json=body, headers=auth(pki, QC_SITE)
    )
    assert refused.status_code == 422
    assert "body.signature.password" in refused.json()["detail"]
