"""Issue 13 items 1 and 4 at logistics' adapters: every gRPC method and every HTTP route
(courier routes included) declares its access (roles and relation), and every request a
courier token authenticated is in the access log with the courier, the shipment, its COI
and the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v_logistics.adapters.courier_tokens import CourierTokens
from v2v_logistics.adapters.grpc_api import ACCESS, REQUIRED_ROLES, SERVICE_NAME
from v2v_platform.access_policy import Access, Relation
from v2v_platform.auth import Role
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_testkit.logistics import (
    COI,
    DESTINATION,
    ORIGIN,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    din,
)

NOW = Clock().now
OPERATOR = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}
SITE_ROUTES = {
    ("post", "/v1/shipments"): "CreateShipment",
    ("get", "/v1/shipments/{shipment_id}"): "GetShipment",
    ("post", "/v1/shipments/{shipment_id}/courier"): "AssignCourier",
    ("post", "/v1/shipments/{shipment_id}/receipt"): "ReceiveShipment",
    ("post", "/v1/shipments/{shipment_id}/inspection"): "InspectReceipt",
    ("post", "/v1/shipments/{shipment_id}/exception"): "RecordException",
    ("post", "/v1/shipments/{shipment_id}/temperature-readings"): "UploadTemperatureReadings",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    specs = [f"{ORIGIN}:collection", f"{DESTINATION}:manufacturing", f"{SERVICE_SITE}:courier"]
    init_pki(directory, [parse_site_spec(s) for s in specs])
    return directory


def test_every_grpc_method_declares_its_access() -> None:
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["LogisticsService"].methods}
    assert set(ACCESS) == methods
    assert {f"/{SERVICE_NAME}/{m}": ACCESS[m].roles for m in methods} == REQUIRED_ROLES
    assert {m for m, a in ACCESS.items() if a.relation is Relation.SHIPMENT} == methods - {
        "CreateShipment"
    }
    assert not any(a.writes for a in ACCESS.values() if Role.AUDITOR in a.roles)


def test_every_http_route_declares_its_access_and_site_routes_their_grpc_twins(
    client: TestClient,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    declared = {
        (verb, path): Access.from_openapi(operation)
        for path, operations in paths.items()
        for verb, operation in operations.items()
    }
    assert None not in declared.values(), [k for k, v in declared.items() if v is None]
    for route, method in SITE_ROUTES.items():
        assert declared[route] == ACCESS[method], route
    courier = {route: access for route, access in declared.items() if "/courier/" in route[1]}
    assert set(courier) == {
        ("post", "/v1/courier/login"),
        ("get", "/v1/courier/me"),
        ("get", "/v1/courier/shipments"),
        ("post", "/v1/courier/shipments/{shipment_id}/scans"),
        ("post", "/v1/courier/shipments/{shipment_id}/offer"),
        ("post", "/v1/courier/shipments/{shipment_id}/handoff"),
    }
    assert all(a is not None and a.roles == {Role.COURIER} for a in courier.values())
    relations = {route[1].rsplit("/", 1)[-1]: a.relation for route, a in courier.items() if a}
    assert relations == {
        "login": Relation.NO_PATIENT_DATA,
        "me": Relation.NO_PATIENT_DATA,
        "shipments": Relation.FILTERED,
        "scans": Relation.SHIPMENT,
        "offer": Relation.SHIPMENT,
        "handoff": Relation.SHIPMENT,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def scan(label: str, giver: str = f"site:{ORIGIN}") -> dict[str, Any]:
    return {
        "idempotency_key": str(uuid4()),
        "scanned_at": NOW.isoformat(),
        "from_party": giver,
        "label": label,
    }


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "v2v.access"]


def test_courier_requests_are_in_the_access_log(
    client: TestClient,
    pki: Path,
    facts: InMemoryFacts,
    tokens: CourierTokens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unit = facts.package(din(1))
    body = {
        "operator": OPERATOR,
        "manifest": [unit],
        "condition": "fresh-cold",
        "destination_site_id": DESTINATION,
        "shipper_id": "DEWAR-9",
        "data_logger_id": "LOGGER-5",
        "courier_id": "C-1",
    }
    origin = bearer(issue_site_token(pki, ORIGIN))
    shipment_id = client.post("/v1/shipments", json=body, headers=origin).json()["shipment_id"]
    c1 = bearer(tokens.issue("C-1", "Kim Courier", SERVICE_SITE))
    c3 = bearer(tokens.issue("C-3", "Max Courier", SERVICE_SITE))
    caplog.set_level("INFO", logger="v2v.access")
    base = f"/v1/courier/shipments/{shipment_id}"

    assert client.get("/v1/courier/me", headers=c1).status_code == 200
    assert client.post(f"{base}/scans", json=scan(unit), headers=c1).status_code == 200
    refused = client.post(f"{base}/scans", json=scan(din(77)), headers=c1)
    assert refused.status_code == 409
    stranger = client.post(f"{base}/scans", json=scan(unit), headers=c3)
    assert stranger.status_code == 404

    route = "POST /v1/courier/shipments/{shipment_id}/scans"
    who = f"http site={SERVICE_SITE} roles=courier"
    assert access_lines(caplog) == [
        f"{who} GET /v1/courier/me courier=C-1 coi=- outcome=200",
        f"{who} {route} shipment={shipment_id} courier=C-1 coi={COI} outcome=200",
        f"{who} {route} shipment={shipment_id} courier=C-1 coi={COI} outcome=409",
        f"{who} {route} shipment={shipment_id} courier=C-3 coi=- outcome=404",
    ]
    assert unit not in " ".join(access_lines(caplog))  # request bodies are never logged
