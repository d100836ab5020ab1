"""The intake HTTP API: same application, bearer tokens, problem+json, OpenAPI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.bootstrap import bootstrap
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_testkit.intake import (
    ENROLLED_AT,
    NOW,
    FakeSlots,
    FixedClock,
    declare_din_block,
    password_of,
    signer_store,
)

MB = 1024 * 1024
OPERATOR = {"user_id": "u-1", "printed_name": "Ada Example"}
SECOND = {"user_id": "u-2", "printed_name": "Ben Example"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    sites = ["HOSP-A:collection", "AUDIT-X:auditor", "GMP-B:manufacturing"]
    init_pki(directory, [parse_site_spec(s) for s in sites])
    declare_din_block(directory)
    return directory


@pytest.fixture(scope="module")
def client(pki: Path) -> TestClient:
    settings = IntakeSettings(
        site_id="HOSP-A", fin="A1234", pki_dir=pki, manufacturing_target="x:1"
    )
    service = bootstrap(
        settings,
        manufacturing=FakeSlots(),
        keys=InMemoryKeyStore(),
        signers=signer_store("HOSP-A"),
        clock=FixedClock(),
    )
    return TestClient(service.http_app, raise_server_exceptions=False)


def auth(pki: Path, site: str = "HOSP-A") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def enrolment(pseudonym: str, printed_name: str = "Ada Example") -> dict[str, Any]:
    return {
        "operator": {"user_id": "u-1", "printed_name": printed_name},
        "patient_pseudonym": pseudonym,
        "personal_details": {
            "given_name": "Ada",
            "family_name": "Example",
            "mrn": "M-9",
            "birth_date": "1970-01-01",
        },
        "treating_site_id": "HOSP-A",
        "enrolled_at": ENROLLED_AT.isoformat(),
    }


def proof(operator: dict[str, str], password: str | None = None) -> dict[str, str]:
    """The operator's re-authentication for a label scan (their own password unless given)."""
    user_id = operator["user_id"]
    given = password_of(user_id) if password is None else password
    return {"user_id": user_id, "password": given, "meaning": "verification"}


def enrol(client: TestClient, pki: Path, pseudonym: str, site: str = "HOSP-A") -> Any:
    return client.post("/v1/therapies", json=enrolment(pseudonym), headers=auth(pki, site))


def test_the_intake_journey_over_http(client: TestClient, pki: Path) -> None:
    coi = enrol(client, pki, "PSN-H1").json()["coi"]
    slot = client.post(
        f"/v1/therapies/{coi}/slots",
        json={"operator": OPERATOR, "manufacturing_site_id": "GMP-B", "slot_date": "2025-03-20"},
        headers=auth(pki),
    )
    assert slot.status_code == 201
    collection = client.post(
        f"/v1/therapies/{coi}/collections",
        json={
            "operator": OPERATOR,
            "started_at": "2025-03-14T06:00:00Z",
            "ended_at": "2025-03-14T10:00:00Z",
            "volume_ml": 210.0,
            "total_nucleated_cells_e9": 11.0,
            "cd3_cells_e9": 5.5,
        },
        headers=auth(pki),
    ).json()["collection_id"]
    [din] = client.post(
        f"/v1/therapies/{coi}/collections/{collection}/units",
        json={"operator": OPERATOR, "count": 1},
        headers=auth(pki),
    ).json()["dins"]
    scan = {
        "operator": OPERATOR,
        "scanned_din": din,
        "scanned_coi": "CHA123425000999",
        "signature": proof(OPERATOR),
    }
    refused = client.post(f"/v1/therapies/{coi}/units/{din}/scans", json=scan, headers=auth(pki))
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "coi-mismatch" in refused.json()["detail"]
    for operator, verified in ((OPERATOR, False), (SECOND, True)):
        scan = {
            "operator": operator,
            "scanned_din": din,
            "scanned_coi": coi,
            "signature": proof(operator),
        }
        response = client.post(
            f"/v1/therapies/{coi}/units/{din}/scans", json=scan, headers=auth(pki)
        )
        assert response.json() == {"verified": verified}
    packaged = client.post(
        f"/v1/therapies/{coi}/units/{din}/packaging",
        json={
            "operator": OPERATOR,
            "condition": "cryo",
            "temperature_c": -160,
            "manufacturing_site_id": "GMP-B",
            "frozen_at": NOW.isoformat(),
        },
        headers=auth(pki),
    )
    assert packaged.status_code == 200, packaged.text
    view = client.get(f"/v1/therapies/{coi}", headers=auth(pki)).json()
    assert view["personal_details"]["mrn"] == "M-9" and view["units"][0]["status"] == "packaged"
    audit = client.get(f"/v1/therapies/{coi}", headers=auth(pki, "AUDIT-X")).json()
    assert audit["personal_details"] is None


def test_a_label_scan_over_http_proves_its_person(client: TestClient, pki: Path) -> None:
    """Issue 13 item 2: a scan without the person's re-authentication is 422, with a wrong
    password 401, by someone other than the operator 422; none of them is recorded."""
    coi = enrol(client, pki, "PSN-H-PROVEN").json()["coi"]
    client.post(
        f"/v1/therapies/{coi}/slots",
        json={"operator": OPERATOR, "manufacturing_site_id": "GMP-B", "slot_date": "2025-03-20"},
        headers=auth(pki),
    )
    collection = client.post(
        f"/v1/therapies/{coi}/collections",
        json={
            "operator": OPERATOR,
            "started_at": "2025-03-14T06:00:00Z",
            "ended_at": "2025-03-14T10:00:00Z",
            "volume_ml": 210.0,
            "total_nucleated_cells_e9": 11.0,
            "cd3_cells_e9": 5.5,
        },
        headers=auth(pki),
    ).json()["collection_id"]
    [din] = client.post(
        f"/v1/therapies/{coi}/collections/{collection}/units",
        json={"operator": OPERATOR, "count": 1},
        headers=auth(pki),
    ).json()["dins"]
    url = f"/v1/therapies/{coi}/units/{din}/scans"
    unsigned = {"operator": SECOND, "scanned_din": din, "scanned_coi": coi}
    assert client.post(url, json=unsigned, headers=auth(pki)).status_code == 422
    wrong = {**unsigned, "signature": proof(SECOND, password_of("u-1"))}
    failed = client.post(url, json=wrong, headers=auth(pki))
    assert failed.status_code == 401
    assert failed.json()["type"] == "urn:v2v:problem:reauthentication-failed"
    assert password_of("u-1") not in failed.text
    other = {**unsigned, "signature": proof(OPERATOR)}
    mismatch = client.post(url, json=other, headers=auth(pki))
    assert mismatch.status_code == 422 and "operator.user_id 'u-2'" in mismatch.json()["detail"]
    view = client.get(f"/v1/therapies/{coi}", headers=auth(pki)).json()
    assert view["units"][0]["status"] == "labelled"


def test_errors_are_problem_documents_without_internals(client: TestClient, pki: Path) -> None:
    enrol(client, pki, "PSN-H2")
    again = enrol(client, pki, "PSN-H2")
    assert again.status_code == 409 and "already has an open therapy" in again.json()["detail"]
    missing = client.get("/v1/therapies/CHA123425999999", headers=auth(pki))
    assert missing.status_code == 404
    invalid = client.post(
        "/v1/therapies/CHA123425000001/slots", json={"operator": OPERATOR}, headers=auth(pki)
    )
    assert invalid.status_code == 422
    for response in (again, missing, invalid):
        assert response.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in response.text


def test_tokens_and_roles(client: TestClient, pki: Path) -> None:
    assert enrol(client, pki, "PSN-H3").status_code == 201
    assert client.get("/v1/therapies/CHA123425000001").status_code == 401
    assert enrol(client, pki, "PSN-H4", site="GMP-B").status_code == 403
    assert (
        client.get("/v1/therapies/CHA123425000001", headers=auth(pki, "GMP-B")).status_code == 403
    )


def test_openapi_is_published(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/therapies" in paths and "/v1/therapies/{coi}/units/{din}/scans" in paths


@pytest.mark.parametrize(
    "body",
    [enrolment("PSN-BIG-1", printed_name="N" * (3 * MB // 2)), enrolment("P" * (2 * MB))],
)
def test_a_megabyte_enrolment_is_refused_at_the_body_limit(
    client: TestClient, pki: Path, body: dict[str, Any]
) -> None:
    response = client.post("/v1/therapies", json=body, headers=auth(pki))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["limit_bytes"] == 262144
    assert "exceeds the limit of 262144 bytes" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            enrolment("PSN-L1", "N" * 201),
            "body.operator.printed_name: String should have at most 200",
        ),
        (enrolment("P" * 65), "body.patient_pseudonym: String should have at most 64 characters"),
    ],
)
def test_an_enrolment_field_over_its_limit_is_422_naming_it(
    client: TestClient, pki: Path, body: dict[str, Any], named: str
) -> None:
    response = client.post("/v1/therapies", json=body, headers=auth(pki))
    assert response.status_code == 422
    assert named in response.json()["detail"]


def test_a_nan_collection_volume_is_422_naming_the_field(client: TestClient, pki: Path) -> None:
    coi = enrol(client, pki, "PSN-NAN").json()["coi"]
    body = {
        "operator": OPERATOR,
        "started_at": "2025-03-14T06:00:00Z",
        "ended_at": "2025-03-14T10:00:00Z",
        "volume_ml": float("nan"),
        "total_nucleated_cells_e9": 11.0,
        "cd3_cells_e9": 5.5,
    }
    headers = {**auth(pki), "Content-Type": "application/json"}
    text = json.dumps(body)  # NaN, as Python's (and many clients') JSON writes it
    assert '"volume_ml": NaN' in text
    response = client.post(f"/v1/therapies/{coi}/collections", content=text, headers=headers)
    assert response.status_code == 422
    assert "body.volume_ml: Input should be a finite number" in response.json()["detail"]


def test_every_request_on_a_chain_is_in_the_access_log(
    client: TestClient, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="v2v.access")
    coi = enrol(client, pki, "PSN-LOG-H").json()["coi"]
    path = f"/v1/therapies/{coi}"
    assert client.get(path, headers=auth(pki)).status_code == 200
    assert client.get(path, headers=auth(pki, "GMP-B")).status_code == 403
    assert client.get(path).status_code == 401
    assert client.get("/openapi.json").status_code == 200

    lines = [r.getMessage() for r in caplog.records if r.name == "v2v.access"]
    route = "GET /v1/therapies/{coi}"
    assert [line for line in lines if route in line] == [
        f"http site=HOSP-A roles=collection {route} coi={coi} outcome=200",
        f"http site=GMP-B roles=manufacturing {route} coi={coi} outcome=403",
        f"http site=- roles=- {route} coi={coi} outcome=401",
    ]
    assert any(
        line.startswith("http site=HOSP-A") and "POST /v1/therapies" in line for line in lines
    )
    assert not any("openapi" in line for line in lines)
    assert not any("Ada" in line for line in lines)
