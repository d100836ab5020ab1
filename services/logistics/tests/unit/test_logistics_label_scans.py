"""A rendered ISBT 128 label, scanned (decoded by zxing-cpp from the printed PDF), is accepted
by the courier API and by gRPC as its unit (issue 17 item 3): the DIN's Code 128 (`=` + DIN +
flags), the DataMatrix's compound message and the eye-readable form all name the DIN. A
check character or check-value flags that do not match, or flags that differ from the
manifest unit's, are refused with their own reason code and recorded, never accepted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Operator
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v_logistics.adapters.courier_tokens import CourierTokens
from v2v_logistics.bootstrap import LogisticsService
from v2v_logistics.domain.shipment import Shipment
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.ids import Din
from v2v_platform.labels import Label, barcode_texts, label_pdf
from v2v_platform.proto_values import timestamp
from v2v_testkit.labels import read_pdf_barcodes
from v2v_testkit.logistics import (
    COI,
    DESTINATION,
    ORIGIN,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    din,
    stored_events,
)

SITES = [f"{ORIGIN}:collection", f"{DESTINATION}:manufacturing", f"{SERVICE_SITE}:courier"]
NOW = Clock().now


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    return directory


def scanned_off(label: Label) -> dict[str, str]:
    """What a scanner reads off the printed label: each barcode's text, by kind."""
    read = read_pdf_barcodes(label_pdf(label))
    assert read == barcode_texts(label)
    return read


def create(client: TestClient, pki: Path, units: list[str]) -> str:
    body: dict[str, Any] = {
        "operator": {"user_id": "u-nurse", "printed_name": "Nora Nurse"},
        "manifest": units,
        "condition": "fresh-cold",
        "destination_site_id": DESTINATION,
        "shipper_id": "DEWAR-9",
        "data_logger_id": "LOGGER-5",
        "courier_id": "C-17",
    }
    headers = {"Authorization": f"Bearer {issue_site_token(pki, ORIGIN)}"}
    response = client.post("/v1/shipments", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["shipment_id"])


def scan(label: str) -> dict[str, Any]:
    return {
        "idempotency_key": str(uuid4()),
        "scanned_at": NOW.isoformat(),
        "from_party": f"site:{ORIGIN}",
        "label": label,
    }


def courier(tokens: CourierTokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue('C-17', 'Kim Courier', ORIGIN)}"}


def test_a_rendered_label_scanned_is_accepted_by_the_courier_api(
    client: TestClient, pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    units = [facts.package(din(n)) for n in (1, 2, 3)]
    shipment_id = create(client, pki, units)
    labels = [Label(Din.parse(unit), COI, expires_at=NOW + timedelta(days=2)) for unit in units]
    path = f"/v1/courier/shipments/{shipment_id}/scans"
    me = courier(tokens)

    code128 = scanned_off(labels[0])["din"]
    datamatrix = scanned_off(labels[1])["datamatrix"]
    assert code128 == f"={units[0]}" and datamatrix.startswith(f"=+02000={units[1]}&>")
    for unit, label in [
        (units[0], code128),
        (units[1], datamatrix),
        (units[2], labels[2].eye_readable_din),
    ]:
        accepted = client.post(path, json=scan(label), headers=me)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["din"] == unit
    assert accepted.json()["remaining"] == []


@pytest.mark.parametrize(
    ("label", "reason_code", "named"),
    [
        (lambda unit: Din.parse(unit).eye_readable()[:-1] + "*", "check-character-mismatch", "'*'"),
        (lambda unit: f"{unit}*", "check-character-mismatch", "check character is '*'"),
        (lambda unit: f"={unit[:13]}96", "check-character-mismatch", "flags '96'"),
        (lambda unit: f"=+01000={unit[:13]}96", "check-character-mismatch", "flags '96'"),
        (lambda unit: f"={unit[:13]}01", "flags-mismatch", "has flags '01'"),
        (lambda unit: f"=+02000={unit}", "malformed-label", "announces 2 data structures"),
    ],
)
def test_a_label_that_does_not_check_is_refused_with_its_reason_and_recorded(
    service: LogisticsService,
    client: TestClient,
    pki: Path,
    facts: InMemoryFacts,
    tokens: CourierTokens,
    label: Any,
    reason_code: str,
    named: str,
) -> None:
    unit = facts.package(din(1))
    shipment_id = create(client, pki, [unit])
    scanned = label(unit)

    refused = client.post(
        f"/v1/courier/shipments/{shipment_id}/scans", json=scan(scanned), headers=courier(tokens)
    )
    assert refused.status_code == 409
    assert refused.json()["reason_code"] == reason_code and named in refused.json()["detail"]
    recorded = stored_events(service.app)[-1]
    assert isinstance(recorded, Shipment.ScanMismatchRecorded)
    assert recorded.reason_code == reason_code and recorded.scanned_label == scanned


def test_over_grpc_a_scanned_datamatrix_is_its_unit_and_a_wrong_check_character_is_refused(
    pki: Path, service: LogisticsService, facts: InMemoryFacts, client: TestClient
) -> None:
    service.start_grpc("127.0.0.1:0")
    units = [facts.package(din(1)), facts.package(din(2))]
    shipment_id = create(client, pki, units)
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, DESTINATION))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    destination = pb_grpc.LogisticsServiceStub(channel)

    def record(label: str) -> Any:
        return destination.RecordScan(
            pb.RecordScanRequest(
                operator=Operator(user_id="u-gmp", printed_name="Gus Operator"),
                shipment_id=shipment_id,
                idempotency_key=str(uuid4()),
                scanned_at=timestamp(NOW),
                label=label,
            ),
            timeout=10,
        )

    with channel:
        datamatrix = scanned_off(Label(Din.parse(units[0]), COI))["datamatrix"]
        assert record(datamatrix).din == units[0]
        with pytest.raises(grpc.RpcError) as refused:
            record(Din.parse(units[1]).eye_readable()[:-1] + "*")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.details().startswith("check-character-mismatch: ")
        assert record(f"={units[1]}").din == units[1]
