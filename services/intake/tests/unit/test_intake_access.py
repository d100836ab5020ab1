"""Intake's declared access (issue 13): every gRPC method and HTTP route says which roles and
which relationship it needs; commands are the intake site's own (OWN_SITE), a therapy is read
by its enrolling and treating sites and auditors (PATIENT) - any other site gets NOT_FOUND,
as if the COI had never been issued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1 import common_pb2
from v2v.intake.v1 import intake_service_pb2 as pb
from v2v.intake.v1 import intake_service_pb2_grpc as pb_grpc
from v2v_intake.adapters import grpc_api, http_api
from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.bootstrap import IntakeService, bootstrap
from v2v_intake.settings import IntakeSettings
from v2v_platform.access_policy import Access, Relation, required_roles
from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_testkit.intake import FakeSlots, FixedClock, declare_din_block

SITES = [
    "HOSP-A:collection",
    "HOSP-C:collection,infusion",
    "HOSP-T:infusion",
    "AUDIT-X:auditor",
    "GMP-B:manufacturing",
]
ROUTES = {  # HTTP route -> its gRPC twin
    ("post", "/v1/therapies"): "EnrolPatient",
    ("get", "/v1/therapies/{coi}"): "GetPatient",
    ("post", "/v1/therapies/{coi}/erasure"): "ErasePersonalDetails",
    ("post", "/v1/therapies/{coi}/slots"): "BookSlot",
    ("post", "/v1/therapies/{coi}/collections"): "RecordCollection",
    ("post", "/v1/therapies/{coi}/collections/{collection_id}/units"): "LabelUnits",
    ("post", "/v1/therapies/{coi}/units/{din}/scans"): "VerifyLabel",
    ("post", "/v1/therapies/{coi}/units/{din}/packaging"): "PackageUnit",
}
HTTP_ONLY = {  # HTTP route without a gRPC twin -> its declared access
    ("get", "/v1/therapies/{coi}/units/{din}/label.pdf"): http_api.UNIT_LABEL,
}


def test_every_method_declares_its_access() -> None:
    methods = pb.DESCRIPTOR.services_by_name["IntakeService"].methods_by_name

    assert set(grpc_api.ACCESS) == set(methods)
    assert required_roles(grpc_api.SERVICE_NAME, grpc_api.ACCESS) == grpc_api.REQUIRED_ROLES
    for method, access in grpc_api.ACCESS.items():
        if method == "GetPatient":
            assert access.relation == Relation.PATIENT and not access.writes
            assert access.roles == {Role.COLLECTION, Role.INFUSION, Role.AUDITOR}
        else:
            assert access.relation == Relation.OWN_SITE and access.writes
            assert access.roles == {Role.COLLECTION}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    declare_din_block(directory)
    return directory


@pytest.fixture(scope="module")
def service(pki: Path) -> Iterator[IntakeService]:
    settings = IntakeSettings(
        site_id="HOSP-A", fin="A1234", pki_dir=pki, manufacturing_target="127.0.0.1:1"
    )
    running = bootstrap(
        settings, manufacturing=FakeSlots(), keys=InMemoryKeyStore(), clock=FixedClock()
    )
    yield running
    running.stop()


def test_every_http_route_declares_the_access_of_its_grpc_twin(service: IntakeService) -> None:
    paths = service.http_app.openapi()["paths"]
    routes = {(verb, path): op for path, ops in paths.items() for verb, op in ops.items()}

    assert set(routes) == set(ROUTES) | set(HTTP_ONLY)
    for route, operation in routes.items():
        declared = HTTP_ONLY.get(route) or grpc_api.ACCESS[ROUTES[route]]
        assert Access.from_openapi(operation) == declared, route
    assert (http_api.UNIT_LABEL.relation, http_api.UNIT_LABEL.roles) == (
        Relation.OWN_SITE,
        frozenset({Role.COLLECTION}),
    )
    assert not http_api.UNIT_LABEL.writes


def enrolled_for(service: IntakeService, pki: Path, treating_site: str) -> str:
    body = {
        "operator": {"user_id": "u-1", "printed_name": "Ada Example"},
        "patient_pseudonym": f"PSN-{treating_site}",
        "personal_details": {
            "given_name": "Ada",
            "family_name": "Example",
            "mrn": "M-9",
            "birth_date": "1970-01-01",
        },
        "treating_site_id": treating_site,
    }
    http = TestClient(service.http_app)
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'HOSP-A')}"}
    coi: str = http.post("/v1/therapies", json=body, headers=headers).json()["coi"]
    return coi


def read_over_http(service: IntakeService, pki: Path, site: str, coi: str) -> Any:
    headers = {"Authorization": f"Bearer {issue_site_token(pki, site)}"}
    return TestClient(service.http_app).get(f"/v1/therapies/{coi}", headers=headers)


def test_a_therapy_is_read_by_its_enrolling_and_treating_sites_and_auditors_only(
    service: IntakeService, pki: Path
) -> None:
    coi = enrolled_for(service, pki, "HOSP-T")

    assert read_over_http(service, pki, "HOSP-A", coi).json()["personal_details"] is not None
    treating = read_over_http(service, pki, "HOSP-T", coi)  # an infusion-only treating site
    assert treating.status_code == 200 and treating.json()["personal_details"] is None
    assert read_over_http(service, pki, "AUDIT-X", coi).status_code == 200
    unrelated = read_over_http(service, pki, "HOSP-C", coi)
    assert unrelated.status_code == 404
    assert unrelated.headers["content-type"] == "application/problem+json"
    assert read_over_http(service, pki, "GMP-B", coi).status_code == 403  # no reading role


def test_an_unrelated_site_gets_not_found_over_grpc_like_an_unknown_coi(
    service: IntakeService, pki: Path
) -> None:
    coi = enrolled_for(service, pki, "HOSP-A")
    running = service.start_grpc("127.0.0.1:0")

    def read(site: str, wanted: str) -> grpc.StatusCode:
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
        with secure_channel(f"127.0.0.1:{running.port}", credentials) as channel:
            try:
                pb_grpc.IntakeServiceStub(channel).GetPatient(
                    pb.GetPatientRequest(coi=wanted), timeout=5
                )
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                return code
        return grpc.StatusCode.OK

    assert read("HOSP-C", coi) == grpc.StatusCode.NOT_FOUND
    assert read("HOSP-C", "CHA123425999999") == grpc.StatusCode.NOT_FOUND
    assert read("HOSP-A", coi) == grpc.StatusCode.OK
    operator = common_pb2.Operator(user_id="u-1", printed_name="Ada Example")
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-C"))
    with secure_channel(f"127.0.0.1:{running.port}", credentials) as channel:
        erase = pb.ErasePersonalDetailsRequest(operator=operator, coi=coi, reason="asked")
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.IntakeServiceStub(channel).ErasePersonalDetails(erase, timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # OWN_SITE: Forbidden
