"""Each site acts only on its own patients (issue 13), through the gRPC (mTLS) and HTTP (site
token) adapters over one application with in-memory facts:

- a batch's release record is read only by this QC site, the batch's manufacturing site, the
  COI's treating site (from intake's `PatientEnrolled`) and auditors: another QC site or
  hospital gets NOT_FOUND (404), as if the batch did not exist;
- the OOS acceptance comes only from the COI's treating site: any other site, or any site
  while the treating site is unknown here, gets NOT_FOUND (404) and nothing is recorded;
- every gRPC method and HTTP route declares its access.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import ESignatureRequest, Operator
from v2v.release.v1 import release_service_pb2 as pb
from v2v.release.v1 import release_service_pb2_grpc as pb_grpc
from v2v_platform.access_policy import Access
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.identity import Role
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_release.adapters import grpc_api
from v2v_release.bootstrap import ReleaseService, bootstrap
from v2v_release.settings import ReleaseSettings
from v2v_testkit.release import (
    BATCH_ID,
    COI,
    GMP,
    OTHER_SITE,
    PASSWORD,
    PHYSICIAN_USER,
    PRE_RELEASE,
    QC_SITE,
    TREATING_SITE,
    Clock,
    InMemoryReleaseFacts,
    qc,
    qp_signature,
    reader,
    record,
    signers,
)

OTHER_QC = "QC-9"
AUDITOR = "AUDIT-1"
SITES = [
    f"{QC_SITE}:qc",
    f"{OTHER_QC}:qc",
    f"{GMP}:manufacturing,qc",
    f"{TREATING_SITE}:infusion",
    f"{OTHER_SITE}:infusion",
    f"{AUDITOR}:auditor",
]
AUDIT = reader(AUDITOR, Role.AUDITOR)
DOCTOR = Operator(user_id=PHYSICIAN_USER, printed_name="Dr. Tara Treat")
Running = tuple[ReleaseService, InMemoryReleaseFacts]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    return directory


@pytest.fixture
def service(pki: Path) -> Iterator[Running]:
    facts = InMemoryReleaseFacts()
    facts.started()
    facts.harvested()
    facts.enrolled()
    settings = ReleaseSettings(site_id=QC_SITE, pki_dir=pki)
    running = bootstrap(settings, facts=facts, signer_store=signers(), clock=Clock())
    running.start_grpc("127.0.0.1:0")
    yield running, facts
    running.stop()


def call_as(pki: Path, running: ReleaseService, site: str, method: str, request: Any) -> Any:
    """Call `method` with `site`'s certificate; the response, or the refusal's status code."""
    assert running.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    with secure_channel(f"127.0.0.1:{running.grpc.port}", credentials) as channel:
        try:
            return getattr(pb_grpc.ReleaseServiceStub(channel), method)(request, timeout=5)
        except grpc.RpcError as error:
            return error.code()


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def justified(running: ReleaseService) -> None:
    record(running.app, PRE_RELEASE, viability="65")
    running.app.justify_oos_release(BATCH_ID, "no alternative", qp_signature(), qc())


def acceptance() -> pb.AcceptOosReleaseRequest:
    signature = ESignatureRequest(
        user_id=PHYSICIAN_USER, password=PASSWORD, meaning="responsibility"
    )
    return pb.AcceptOosReleaseRequest(operator=DOCTOR, batch_id=BATCH_ID, signature=signature)


def test_a_batch_release_is_read_only_by_its_related_sites_and_auditors(
    pki: Path, service: Running
) -> None:
    running, _ = service
    request = pb.GetBatchReleaseRequest(batch_id=BATCH_ID)
    for stranger in (OTHER_QC, OTHER_SITE):
        assert call_as(pki, running, stranger, "GetBatchRelease", request) == (
            grpc.StatusCode.NOT_FOUND
        )
    for related in (QC_SITE, GMP, TREATING_SITE, AUDITOR):
        read = call_as(pki, running, related, "GetBatchRelease", request)
        assert read.release.batch_id == BATCH_ID, related
    client = TestClient(running.http_app, raise_server_exceptions=False)
    refused = client.get(f"/v1/batches/{BATCH_ID}", headers=auth(pki, OTHER_QC))
    assert refused.status_code == 404 and "coi" not in refused.json()
    allowed = client.get(f"/v1/batches/{BATCH_ID}", headers=auth(pki, TREATING_SITE))
    assert allowed.status_code == 200 and allowed.json()["batch_id"] == BATCH_ID


def test_grpc_oos_acceptance_only_by_the_treating_site(pki: Path, service: Running) -> None:
    running, facts = service
    justified(running)
    assert call_as(pki, running, OTHER_SITE, "AcceptOosRelease", acceptance()) == (
        grpc.StatusCode.NOT_FOUND
    )
    treating = facts.treating_sites.pop(COI)
    assert call_as(pki, running, TREATING_SITE, "AcceptOosRelease", acceptance()) == (
        grpc.StatusCode.NOT_FOUND  # the treating site not known yet: related to nobody
    )
    assert running.app.batch_release(BATCH_ID, AUDIT).status == "oos-justified"
    facts.enrolled(COI, treating)
    accepted = call_as(pki, running, TREATING_SITE, "AcceptOosRelease", acceptance())
    assert accepted.release.status == "oos-released"


def test_http_oos_acceptance_only_by_the_treating_site(pki: Path, service: Running) -> None:
    running, _ = service
    justified(running)
    client = TestClient(running.http_app, raise_server_exceptions=False)
    body = {
        "operator": {"user_id": PHYSICIAN_USER, "printed_name": "Dr. Tara Treat"},
        "signature": {"user_id": PHYSICIAN_USER, "password": PASSWORD, "meaning": "responsibility"},
    }
    route = f"/v1/batches/{BATCH_ID}/oos-acceptance"
    refused = client.post(route, json=body, headers=auth(pki, OTHER_SITE))
    assert refused.status_code == 404 and TREATING_SITE not in refused.text
    assert running.app.batch_release(BATCH_ID, AUDIT).status == "oos-justified"
    accepted = client.post(route, json=body, headers=auth(pki, TREATING_SITE))
    assert accepted.status_code == 201 and accepted.json()["status"] == "oos-released"


def test_every_method_and_route_declares_its_access(service: Running) -> None:
    methods = pb.DESCRIPTOR.services_by_name["ReleaseService"].methods
    assert {m.name for m in methods} == set(grpc_api.ACCESS)
    assert {
        f"/{grpc_api.SERVICE_NAME}/{name}": access.roles for name, access in grpc_api.ACCESS.items()
    } == grpc_api.REQUIRED_ROLES
    running, _ = service
    for path, operations in running.http_app.openapi()["paths"].items():
        for verb, operation in operations.items():
            assert Access.from_openapi(operation) in grpc_api.ACCESS.values(), f"{verb} {path}"
