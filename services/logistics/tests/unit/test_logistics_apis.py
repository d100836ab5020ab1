"""The courier HTTP API (contract shared with the courier page), the site HTTP API and gRPC over
one application: courier tokens, problem+json with reason codes, idempotent re-sync, mTLS roles."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v_logistics.adapters.courier_tokens import CourierTokens, sqlite_tokens
from v2v_logistics.bootstrap import LogisticsService
from v2v_logistics.domain.shipment import Shipment
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.proto_values import timestamp
from v2v_testkit.logistics import (
    COI,
    DESTINATION,
    ORIGIN,
    OTHER_COI,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    din,
    stored_events,
)

THIRD_SITE, AUDITOR = "HOSP-Z", "AUDIT-1"
SITES = [
    f"{ORIGIN}:collection",
    f"{DESTINATION}:manufacturing",
    f"{SERVICE_SITE}:courier",
    f"{THIRD_SITE}:collection,infusion",
    f"{AUDITOR}:auditor",
]
NOW = Clock().now
MB = 1024 * 1024
OPERATOR = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    return directory


def site(pki: Path, site_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site_id)}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(
    client: TestClient,
    pki: Path,
    units: list[str],
    courier: str = "C-17",
    created_at: datetime | None = None,
) -> str:
    body: dict[str, Any] = {
        "operator": OPERATOR,
        "manifest": units,
        "condition": "fresh-cold",
        "destination_site_id": DESTINATION,
        "shipper_id": "DEWAR-9",
        "data_logger_id": "LOGGER-5",
        "courier_id": courier,
    }
    if created_at is not None:
        body["created_at"] = created_at.isoformat()
    response = client.post("/v1/shipments", json=body, headers=site(pki, ORIGIN))
    assert response.status_code == 201, response.text
    return str(response.json()["shipment_id"])


def scan(label: str, key: str | None = None, giver: str = f"site:{ORIGIN}") -> dict[str, Any]:
    return {
        "idempotency_key": key or str(uuid4()),
        "scanned_at": NOW.isoformat(),
        "from_party": giver,
        "label": label,
    }


def test_the_courier_page_is_public(client: TestClient) -> None:
    page = client.get("/courier")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_courier_tokens_identify_and_can_be_revoked(
    client: TestClient, tokens: CourierTokens
) -> None:
    token = tokens.issue("C-17", "Kim Courier", ORIGIN)
    me = client.get("/v1/courier/me", headers=bearer(token))
    assert me.json() == {"courier_id": "C-17", "printed_name": "Kim Courier", "site_id": ORIGIN}
    assert client.get("/v1/courier/me").status_code == 401
    unknown = client.get("/v1/courier/me", headers=bearer("nope"))
    assert unknown.status_code == 401
    assert unknown.headers["content-type"] == "application/problem+json"
    assert tokens.revoke("C-17", ORIGIN) == 1
    assert client.get("/v1/courier/me", headers=bearer(token)).status_code == 401


def test_a_site_token_is_not_a_courier_token(client: TestClient, pki: Path) -> None:
    assert client.get("/v1/courier/me", headers=site(pki, ORIGIN)).status_code == 401


def test_courier_scans_and_handoff_follow_the_contract(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    units = [facts.package(din(1)), facts.package(din(2))]
    shipment_id = create(client, pki, units)
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    [listed] = client.get("/v1/courier/shipments", headers=me).json()["shipments"]
    assert listed["shipment_id"] == shipment_id and listed["manifest"] == units
    assert listed["custodian"] == f"site:{ORIGIN}" and listed["scanned"] == []
    assert listed["window_ends_at"].endswith("Z") and listed["status"] == "created"
    base = f"/v1/courier/shipments/{shipment_id}"
    first = scan(units[0])
    accepted = client.post(f"{base}/scans", json=first, headers=me)
    assert accepted.status_code == 200
    assert accepted.json() == {
        "outcome": "accepted",
        "din": units[0],
        "remaining": [units[1]],
        "late": False,
    }
    missing = client.post(f"{base}/handoff", json=scan("", giver=f"site:{ORIGIN}"), headers=me)
    assert missing.status_code == 409 and missing.json()["reason_code"] == "missing-unit"
    assert units[1] in missing.json()["detail"]
    client.post(f"{base}/scans", json=scan(units[1]), headers=me)
    again = client.post(f"{base}/scans", json=first, headers=me)  # offline re-sync
    assert (again.status_code, again.json()) == (200, accepted.json())
    handoff = {k: v for k, v in scan("").items() if k != "label"}
    taken = client.post(f"{base}/handoff", json=handoff, headers=me)
    assert taken.json() == {
        "outcome": "accepted",
        "custodian": "courier:C-17",
        "status": "picked-up",
    }
    assert client.post(f"{base}/handoff", json=handoff, headers=me).json() == taken.json()


def test_a_bag_of_another_coi_is_a_stop_with_its_reason(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    shipment_id = create(client, pki, [facts.package(din(1))])
    other = facts.package(din(9), coi=OTHER_COI)
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    body = scan(other)
    stop = client.post(f"/v1/courier/shipments/{shipment_id}/scans", json=body, headers=me)
    assert stop.status_code == 409
    assert stop.headers["content-type"] == "application/problem+json"
    assert stop.json()["reason_code"] == "other-coi" and OTHER_COI in stop.json()["detail"]
    again = client.post(f"/v1/courier/shipments/{shipment_id}/scans", json=body, headers=me)
    assert (again.status_code, again.json()) == (409, stop.json())


def test_scan_times_without_a_zone_and_unknown_shipments_are_refused(
    client: TestClient, tokens: CourierTokens
) -> None:
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    body = {**scan(din(1)), "scanned_at": "2025-06-01T10:00:00"}
    assert client.post(
        f"/v1/courier/shipments/{uuid4()}/scans", json=body, headers=me
    ).status_code in (
        404,
        422,
    )
    assert (
        client.post(
            f"/v1/courier/shipments/{uuid4()}/scans", json=scan(din(1)), headers=me
        ).status_code
        == 404
    )


def test_site_receipt_and_inspection_over_http(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    units = [facts.package(din(1))]
    shipment_id = create(client, pki, units)
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    base = f"/v1/courier/shipments/{shipment_id}"
    client.post(f"{base}/scans", json=scan(units[0]), headers=me)
    client.post(f"{base}/handoff", json=scan(""), headers=me)
    to_gmp = {**scan(""), "to_party": f"site:{DESTINATION}"}
    offered = client.post(f"{base}/offer", json=to_gmp, headers=me)
    assert offered.status_code == 200, offered.text
    assert offered.json() == {
        "outcome": "offered",
        "custodian": "courier:C-17",
        "offered_to": f"site:{DESTINATION}",
        "status": "picked-up",
    }
    gmp = site(pki, DESTINATION)
    receipt = {"operator": OPERATOR, "scanned_labels": units, "from_party": "courier:C-17"}
    wrong = client.post(
        f"/v1/shipments/{shipment_id}/receipt", json=receipt, headers=site(pki, ORIGIN)
    )
    assert wrong.status_code == 409 and wrong.json()["reason_code"] == "wrong-destination"
    done = client.post(f"/v1/shipments/{shipment_id}/receipt", json=receipt, headers=gmp)
    assert done.json()["status"] == "delivered"
    assert client.get("/v1/courier/shipments", headers=me).json() == {"shipments": []}
    inspection = {"operator": OPERATOR, "intact": True, "temperature_log_reviewed": True}
    inspected = client.post(f"/v1/shipments/{shipment_id}/inspection", json=inspection, headers=gmp)
    assert inspected.json()["status"] == "receipt-inspected"


def test_creating_needs_a_shipping_role(client: TestClient, pki: Path) -> None:
    body = {
        "operator": OPERATOR,
        "manifest": [din(1)],
        "condition": "fresh-cold",
        "destination_site_id": DESTINATION,
        "shipper_id": "D",
        "data_logger_id": "L",
    }
    assert (
        client.post("/v1/shipments", json=body, headers=site(pki, SERVICE_SITE)).status_code == 403
    )
    assert client.post("/v1/shipments", json=body).status_code == 401


def stub(pki: Path, service: LogisticsService, site_id: str) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site_id))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.LogisticsServiceStub(channel), channel


def test_grpc_shares_the_application(
    pki: Path, service: LogisticsService, facts: InMemoryFacts
) -> None:
    service.start_grpc("127.0.0.1:0")
    units = [facts.package(din(1))]
    hospital, channel = stub(pki, service, ORIGIN)
    with channel:
        created = hospital.CreateShipment(
            pb.CreateShipmentRequest(
                operator=Operator(user_id="u-1", printed_name="Nora Nurse"),
                manifest_dins=units,
                condition=Condition.CONDITION_FRESH_COLD,
                destination_site_id=DESTINATION,
                shipper_id="DEWAR-9",
                data_logger_id="LOGGER-5",
            ),
            timeout=10,
        ).shipment
        assert created.custodian == f"site:{ORIGIN}"
        with pytest.raises(grpc.RpcError) as refused:
            hospital.CreateShipment(
                pb.CreateShipmentRequest(
                    operator=Operator(user_id="u-1", printed_name="Nora Nurse"),
                    manifest_dins=units,
                    condition=Condition.CONDITION_FRESH_COLD,
                    destination_site_id=DESTINATION,
                    shipper_id="DEWAR-9",
                    data_logger_id="LOGGER-5",
                ),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.details().startswith("wrong-custodian: ")
        got = hospital.GetShipment(
            pb.GetShipmentRequest(shipment_id=created.shipment_id), timeout=10
        )
        assert got.shipment == created
    service_stub, channel = stub(pki, service, SERVICE_SITE)  # courier role only
    with channel, pytest.raises(grpc.RpcError) as denied:
        service_stub.InspectReceipt(
            pb.InspectReceiptRequest(shipment_id=created.shipment_id), timeout=10
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_issue_and_revoke_courier_tokens_from_the_command_line(tmp_path: Path, pki: Path) -> None:
    env = {
        "V2V_SITE_ID": SERVICE_SITE,
        "V2V_PKI_DIR": str(pki),
        "V2V_SQLITE_PATH": str(tmp_path / "l.sqlite"),
    }
    command = [sys.executable, "-m", "v2v_logistics"]
    issued = subprocess.run(
        [
            *command,
            "issue-courier-token",
            "--courier",
            "C-17",
            "--name",
            "Kim Courier",
            "--site",
            ORIGIN,
        ],
        env={**env, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    token = issued.stdout.strip()
    tokens = sqlite_tokens(tmp_path / "l.courier-tokens.sqlite")
    assert tokens.identify(token) is not None and len(token) >= 40
    revoked = subprocess.run(
        [*command, "revoke-courier-token", "--courier", "C-17", "--site", ORIGIN],
        env={**env, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "revoked 1" in revoked.stdout and tokens.identify(token) is None
    missing = subprocess.run(
        [*command, "issue-courier-token", "--courier", "C-1", "--name", "K", "--site", ORIGIN],
        env={"V2V_PKI_DIR": str(pki)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "V2V_SITE_ID" in missing.stderr


def test_late_scans_are_flagged_over_http(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    units = [facts.package(din(1)), facts.package(din(2))]
    # packed two hours ago, so a queued scan an hour old follows its creation (issue 14)
    shipment_id = create(client, pki, units, created_at=NOW - timedelta(hours=2))
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    base = f"/v1/courier/shipments/{shipment_id}/scans"
    client.post(base, json=scan(units[1]), headers=me)
    older = {**scan(units[0]), "scanned_at": (NOW - timedelta(hours=1)).isoformat()}
    assert client.post(base, json=older, headers=me).json()["late"] is True


def test_over_http_a_shipment_is_read_by_its_sites_and_auditors_only(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    tokens.issue("C-17", "Kim Courier", SERVICE_SITE)  # LOGI-1 is C-17's courier company
    shipment_id = create(client, pki, [facts.package(din(1))])
    path = f"/v1/shipments/{shipment_id}"
    for reader in (ORIGIN, DESTINATION, SERVICE_SITE, AUDITOR):
        read = client.get(path, headers=site(pki, reader))
        assert read.status_code == 200, (reader, read.text)
        assert read.json()["shipment_id"] == shipment_id
    hidden = client.get(path, headers=site(pki, THIRD_SITE))
    unknown = str(uuid4())
    absent = client.get(f"/v1/shipments/{unknown}", headers=site(pki, THIRD_SITE))
    assert hidden.status_code == absent.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert hidden.json()["detail"] == absent.json()["detail"].replace(unknown, shipment_id)


def test_over_grpc_a_shipment_is_read_by_its_sites_and_auditors_only(
    pki: Path, service: LogisticsService, facts: InMemoryFacts, client: TestClient
) -> None:
    service.start_grpc("127.0.0.1:0")
    shipment_id = create(client, pki, [facts.package(din(1))])
    request = pb.GetShipmentRequest(shipment_id=shipment_id)
    for reader in (ORIGIN, DESTINATION, AUDITOR):
        reading, channel = stub(pki, service, reader)
        with channel:
            assert reading.GetShipment(request, timeout=10).shipment.shipment_id == shipment_id
    third, channel = stub(pki, service, THIRD_SITE)
    with channel, pytest.raises(grpc.RpcError) as hidden:
        third.GetShipment(request, timeout=10)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_third_site_cannot_upload_readings_to_another_pairs_shipment(
    client: TestClient, pki: Path, facts: InMemoryFacts
) -> None:
    shipment_id = create(client, pki, [facts.package(din(1))])
    body = {
        "operator": OPERATOR,
        "readings": [{"measured_at": NOW.isoformat(), "temperature_c": 5.0, "device_id": "L"}],
    }
    path = f"/v1/shipments/{shipment_id}/temperature-readings"
    assert client.post(path, json=body, headers=site(pki, THIRD_SITE)).status_code == 404


def test_a_courier_scan_of_a_ten_megabyte_label_is_refused_at_the_body_limit(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    shipment_id = create(client, pki, [facts.package(din(1))])
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    path = f"/v1/courier/shipments/{shipment_id}/scans"
    refused = client.post(path, json=scan("L" * (10 * MB)), headers=me)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["limit_bytes"] == 262144 and len(refused.content) < 1000
    view = client.get(f"/v1/shipments/{shipment_id}", headers=site(pki, ORIGIN)).json()
    assert view["status"] == "created"


def test_a_refused_courier_scan_of_a_long_label_is_recorded_and_answered_cut(
    service: LogisticsService, client: TestClient, pki: Path, facts: InMemoryFacts, tokens: Any
) -> None:
    shipment_id = create(client, pki, [facts.package(din(1))])
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    path = f"/v1/courier/shipments/{shipment_id}/scans"
    refused = client.post(path, json=scan("L" * 300), headers=me)
    assert refused.status_code == 409 and refused.json()["reason_code"] == "malformed-label"
    detail = refused.json()["detail"]
    assert "L" * 256 + "…[cut: 300 characters in all]" in detail and "L" * 257 not in detail
    mismatch = stored_events(service.app)[-1]
    assert isinstance(mismatch, Shipment.ScanMismatchRecorded)
    assert mismatch.scanned_label == "L" * 256 + "…[cut: 300 characters in all]"


def test_a_courier_scan_in_2999_is_refused_naming_the_field(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    units = [facts.package(din(1))]
    shipment_id = create(client, pki, units)
    me = bearer(tokens.issue("C-17", "Kim Courier", ORIGIN))
    body = {**scan(units[0]), "scanned_at": "2999-01-01T00:00:00Z"}
    refused = client.post(f"/v1/courier/shipments/{shipment_id}/scans", json=body, headers=me)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("scanned_at 2999-01-01T00:00:00+00:00 is in the")


def readings_body(count: int, temperature: Any = 5.0) -> dict[str, Any]:
    return {
        "operator": OPERATOR,
        "readings": [
            {
                "measured_at": (NOW - timedelta(seconds=count - n)).isoformat(),
                "temperature_c": temperature,
                "device_id": "LOGGER-5",
            }
            for n in range(count)
        ],
    }


@pytest.mark.parametrize(
    ("count", "status", "named"),
    [
        (60_000, 413, "exceeds the limit of 262144 bytes"),
        (1_001, 422, "body.readings: List should have at most 1000 items"),
    ],
)
def test_an_upload_of_too_many_readings_is_refused_over_http(
    client: TestClient, pki: Path, facts: InMemoryFacts, count: int, status: int, named: str
) -> None:
    shipment_id = create(client, pki, [facts.package(din(1))])
    path = f"/v1/shipments/{shipment_id}/temperature-readings"
    refused = client.post(path, json=readings_body(count), headers=site(pki, ORIGIN))
    assert refused.status_code == status
    assert named in refused.json()["detail"]


def test_a_nan_temperature_is_refused_over_http(
    client: TestClient, pki: Path, facts: InMemoryFacts
) -> None:
    shipment_id = create(client, pki, [facts.package(din(1))])
    path = f"/v1/shipments/{shipment_id}/temperature-readings"
    text = json.dumps(readings_body(2, float("nan")))
    headers = {**site(pki, ORIGIN), "Content-Type": "application/json"}
    refused = client.post(path, content=text, headers=headers)
    assert refused.status_code == 422
    assert "body.readings.0.temperature_c: Input should be a finite number" in refused.text


def grpc_readings(shipment_id: str, count: int, temperature: float = 5.0) -> Any:
    return pb.UploadTemperatureReadingsRequest(
        operator=Operator(user_id="u-1", printed_name="Nora Nurse"),
        shipment_id=shipment_id,
        readings=[
            pb.TemperatureReading(
                measured_at=timestamp(NOW - timedelta(seconds=count - n)),
                temperature_c=temperature,
                device_id="LOGGER-5",
            )
            for n in range(count)
        ],
    )


def test_readings_and_scans_are_bounded_over_grpc(
    pki: Path, service: LogisticsService, facts: InMemoryFacts, client: TestClient
) -> None:
    service.start_grpc("127.0.0.1:0")
    shipment_id = create(client, pki, [facts.package(din(1))])
    hospital, channel = stub(pki, service, ORIGIN)
    cases = [
        (grpc_readings(shipment_id, 60_000), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        (
            grpc_readings(shipment_id, 10_000),
            grpc.StatusCode.INVALID_ARGUMENT,
            "readings has 10000 items; the limit is 1000",
        ),
        (
            grpc_readings(shipment_id, 2, float("nan")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "readings[0].temperature_c must be a finite number",
        ),
    ]
    with channel:
        for request, code, named in cases:
            with pytest.raises(grpc.RpcError) as refused:
                hospital.UploadTemperatureReadings(request, timeout=10)
            assert refused.value.code() == code
            assert named in refused.value.details()
        with pytest.raises(grpc.RpcError) as future:
            hospital.RecordScan(
                pb.RecordScanRequest(
                    operator=Operator(user_id="u-1", printed_name="Nora Nurse"),
                    shipment_id=shipment_id,
                    idempotency_key="k-2999",
                    scanned_at=timestamp(datetime(2999, 1, 1, tzinfo=UTC)),
                    from_party=f"site:{ORIGIN}",
                    label=din(1),
                ),
                timeout=10,
            )
        assert future.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert future.value.details().startswith("scanned_at 2999-01-01T00:00:00+00:00 is in")
    view = client.get(f"/v1/shipments/{shipment_id}", headers=site(pki, ORIGIN)).json()
    assert view["excursions"] == []


def test_grpc_calls_on_a_shipment_name_its_coi_in_the_access_log(
    pki: Path, service: LogisticsService, facts: InMemoryFacts, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests name a shipment, not a COI: the log names the shipment's COI, allowed or not."""
    service.start_grpc("127.0.0.1:0")
    unit = facts.package(din(1))
    coi = COI  # the COI `package` files the unit under
    hospital, channel = stub(pki, service, ORIGIN)
    stranger, stranger_channel = stub(pki, service, THIRD_SITE)
    with channel, stranger_channel:
        created = hospital.CreateShipment(
            pb.CreateShipmentRequest(
                operator=Operator(user_id="u-1", printed_name="Nora Nurse"),
                manifest_dins=[unit],
                condition=Condition.CONDITION_FRESH_COLD,
                destination_site_id=DESTINATION,
                shipper_id="DEWAR-9",
                data_logger_id="LOGGER-5",
            ),
            timeout=10,
        ).shipment
        caplog.set_level("INFO", logger="v2v.access")
        asked = pb.GetShipmentRequest(shipment_id=created.shipment_id)
        hospital.GetShipment(asked, timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            stranger.GetShipment(asked, timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    method = "/v2v.logistics.v1.LogisticsService/GetShipment"
    lines = [r.getMessage() for r in caplog.records if r.name == "v2v.access"]
    assert lines == [
        f"grpc site={ORIGIN} roles=collection {method} coi={coi} outcome=OK",
        f"grpc site={THIRD_SITE} roles=collection,infusion {method} coi={coi} outcome=NOT_FOUND",
    ]
