"""Clinical time through the intake adapters (issue 14): an enrolment entered after the fact
over HTTP keeps when it happened, and a collection before it is refused (422 naming the
field)."""

from __future__ import annotations

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
    FakeSlots,
    FixedClock,
    declare_din_block,
    password_of,
    signer_store,
)

OPERATOR = {"user_id": "u-1", "printed_name": "Ada Example"}
ENROLMENT = {
    "operator": OPERATOR,
    "patient_pseudonym": "PSN-T1",
    "personal_details": {
        "given_name": "Ada",
        "family_name": "Example",
        "mrn": "M-9",
        "birth_date": "1970-01-01",
    },
    "treating_site_id": "HOSP-A",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec("HOSP-A:collection")])
    declare_din_block(directory)
    return directory


@pytest.fixture
def client(pki: Path) -> TestClient:
    settings = IntakeSettings(
        site_id="HOSP-A", fin="A1234", pki_dir=pki, manufacturing_target="x:1"
    )
    service = bootstrap(
        settings,
        manufacturing=FakeSlots(),
        keys=InMemoryKeyStore(),
        signers=signer_store("HOSP-A"),
        clock=FixedClock(),  # now: 2025-03-14T12:00Z
    )
    return TestClient(service.http_app, raise_server_exceptions=False)


def test_http_enrolment_entered_after_the_fact(client: TestClient, pki: Path) -> None:
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'HOSP-A')}"}
    future = {**ENROLMENT, "enrolled_at": "2025-03-15T12:00:00Z"}
    refused = client.post("/v1/therapies", json=future, headers=headers)
    assert refused.status_code == 422 and "enrolled_at" in refused.json()["detail"]
    late = {**ENROLMENT, "enrolled_at": "2025-03-10T09:00:00+02:00"}  # 07:00Z, four days ago
    coi = client.post("/v1/therapies", json=late, headers=headers).json()["coi"]
    client.post(
        f"/v1/therapies/{coi}/slots",
        json={"operator": OPERATOR, "manufacturing_site_id": "GMP-B", "slot_date": "2025-03-20"},
        headers=headers,
    )
    collection = {
        "operator": OPERATOR,
        "ended_at": "2025-03-10T11:00:00Z",
        "volume_ml": 210.0,
        "total_nucleated_cells_e9": 11.0,
        "cd3_cells_e9": 5.5,
    }
    path = f"/v1/therapies/{coi}/collections"
    before = client.post(
        path, json={**collection, "started_at": "2025-03-10T06:30:00Z"}, headers=headers
    )
    assert before.status_code == 422 and "started_at" in before.json()["detail"]
    assert "enrolment" in before.json()["detail"]
    after = client.post(
        path, json={**collection, "started_at": "2025-03-10T07:00:00Z"}, headers=headers
    )
    assert after.status_code == 201


def test_http_labelling_entered_after_the_fact(client: TestClient, pki: Path) -> None:
    """LabelUnits over HTTP takes `labelled_at`: before the collection's end it is refused
    (422 naming the field), after it the units are labelled."""
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'HOSP-A')}"}
    enrolment = {**ENROLMENT, "patient_pseudonym": "PSN-T2", "enrolled_at": "2025-03-09T08:00:00Z"}
    coi = client.post("/v1/therapies", json=enrolment, headers=headers).json()["coi"]
    client.post(
        f"/v1/therapies/{coi}/slots",
        json={"operator": OPERATOR, "manufacturing_site_id": "GMP-B", "slot_date": "2025-03-20"},
        headers=headers,
    )
    collection = {
        "operator": OPERATOR,
        "started_at": "2025-03-10T07:00:00Z",
        "ended_at": "2025-03-10T11:00:00Z",
        "volume_ml": 210.0,
        "total_nucleated_cells_e9": 11.0,
        "cd3_cells_e9": 5.5,
    }
    recorded = client.post(f"/v1/therapies/{coi}/collections", json=collection, headers=headers)
    path = f"/v1/therapies/{coi}/collections/{recorded.json()['collection_id']}/units"
    labels = {"operator": OPERATOR, "count": 1}
    early_labels = {**labels, "labelled_at": "2025-03-10T10:59:00Z"}
    early = client.post(path, json=early_labels, headers=headers)
    assert early.status_code == 422 and "labelled_at" in early.json()["detail"]
    assert "collection's end" in early.json()["detail"]
    late_labels = {**labels, "labelled_at": "2025-03-10T11:20:00Z"}
    late = client.post(path, json=late_labels, headers=headers)
    assert late.status_code == 201 and len(late.json()["dins"]) == 1


def test_http_scans_and_packaging_entered_after_the_fact(client: TestClient, pki: Path) -> None:
    """Label scans over HTTP take `scanned_at` and packaging `packaged_at`: a scan before the
    labelling and a packaging before the verification are refused (422 naming the field);
    entered after the fact in order, the unit is verified and packaged."""
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'HOSP-A')}"}
    enrolment = {**ENROLMENT, "patient_pseudonym": "PSN-T3", "enrolled_at": "2025-03-09T08:00:00Z"}
    coi = client.post("/v1/therapies", json=enrolment, headers=headers).json()["coi"]
    client.post(
        f"/v1/therapies/{coi}/slots",
        json={"operator": OPERATOR, "manufacturing_site_id": "GMP-B", "slot_date": "2025-03-20"},
        headers=headers,
    )
    collection = {
        "operator": OPERATOR,
        "started_at": "2025-03-10T07:00:00Z",
        "ended_at": "2025-03-10T11:00:00Z",
        "volume_ml": 210.0,
        "total_nucleated_cells_e9": 11.0,
        "cd3_cells_e9": 5.5,
    }
    recorded = client.post(f"/v1/therapies/{coi}/collections", json=collection, headers=headers)
    path = f"/v1/therapies/{coi}/collections/{recorded.json()['collection_id']}/units"
    labels = {"operator": OPERATOR, "count": 1, "labelled_at": "2025-03-10T11:20:00Z"}
    [din] = client.post(path, json=labels, headers=headers).json()["dins"]
    scans = f"/v1/therapies/{coi}/units/{din}/scans"

    def scan(user_id: str, at: str) -> Any:
        operator = {"user_id": user_id, "printed_name": f"Operator {user_id}"}
        signature = {
            "user_id": user_id,
            "password": password_of(user_id),
            "meaning": "verification",
        }
        body = {"operator": operator, "scanned_din": din, "scanned_coi": coi}
        return client.post(
            scans, json={**body, "signature": signature, "scanned_at": at}, headers=headers
        )

    early = scan("u-1", "2025-03-10T11:19:00Z")
    assert early.status_code == 422 and "scanned_at" in early.json()["detail"]
    assert "labelling" in early.json()["detail"]
    assert scan("u-1", "2025-03-10T11:25:00Z").json() == {"verified": False}
    assert scan("u-2", "2025-03-10T11:30:00Z").json() == {"verified": True}
    packaging_path = f"/v1/therapies/{coi}/units/{din}/packaging"
    packaging = {
        "operator": OPERATOR,
        "condition": "fresh-cold",
        "temperature_c": 4.0,
        "manufacturing_site_id": "GMP-B",
    }
    before = {**packaging, "packaged_at": "2025-03-10T11:29:00Z"}
    refused = client.post(packaging_path, json=before, headers=headers)
    assert refused.status_code == 422 and "packaged_at" in refused.json()["detail"]
    assert "verification" in refused.json()["detail"]
    on_time = {**packaging, "packaged_at": "2025-03-10T11:45:00Z"}
    packaged = client.post(packaging_path, json=on_time, headers=headers)
    assert packaged.status_code == 200, packaged.text
    assert packaged.json()["window_starts_at"].startswith("2025-03-10T11:00:00")
