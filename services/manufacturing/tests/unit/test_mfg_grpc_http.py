"""The gRPC and HTTP adapters over one application: mTLS roles, status codes, problem+json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as pb_grpc
from v2v_manufacturing.bootstrap import ManufacturingService, bootstrap
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.conditions import Condition as ConditionKernel
from v2v_testkit.manufacturing import (
    COI,
    DAY,
    FIN,
    GMP,
    HOSPITAL,
    OTHER_COI,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    declare_din_block,
)

SITES = [f"{HOSPITAL}:collection", f"{GMP}:manufacturing", "AUDIT-1:auditor"]
OPERATOR = Operator(user_id="u-op", printed_name="Grace Operator")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    declare_din_block(directory)
    return directory


@pytest.fixture
def service(pki: Path) -> Iterator[tuple[ManufacturingService, InMemoryManufacturingFacts]]:
    facts = InMemoryManufacturingFacts()
    facts.enrolled(COI, HOSPITAL)
    settings = ManufacturingSettings(
        site_id=GMP, fin=FIN, pki_dir=pki, postgres_dsn=None, sqlite_path=None
    )
    running = bootstrap(settings, facts=facts, clock=Clock())
    running.start_grpc("127.0.0.1:0")
    yield running, facts
    running.stop()


def stub(pki: Path, service: ManufacturingService, site: str) -> Any:
    assert service.grpc is not None
    channel = secure_channel(
        f"127.0.0.1:{service.grpc.port}", channel_credentials(SiteTlsFiles.for_site(pki, site))
    )
    return pb_grpc.ManufacturingServiceStub(channel), channel


def status_of(call: Any, request: Any) -> Any:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=5)
    return raised.value.code(), raised.value.details()


def test_grpc_batch_with_lineage_and_refusals(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    running, facts = service
    gmp, gmp_channel = stub(pki, running, GMP)
    hospital, hospital_channel = stub(pki, running, HOSPITAL)
    with gmp_channel, hospital_channel:
        capacity = pb.SetSlotCapacityRequest(
            operator=OPERATOR, manufacturing_site_id=GMP, slot_date=DAY, capacity=1
        )
        assert gmp.SetSlotCapacity(capacity, timeout=5).capacity == 1
        code, _ = status_of(hospital.SetSlotCapacity, capacity)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        booking = pb.BookSlotRequest(
            operator=OPERATOR, coi=COI, manufacturing_site_id=GMP, slot_date=DAY
        )
        slot = hospital.BookSlot(booking, timeout=5)
        assert slot.slot_id.startswith(f"{GMP}/{DAY}/")
        calendar = gmp.GetSlotCalendar(
            pb.GetSlotCalendarRequest(manufacturing_site_id=GMP, slot_date=DAY), timeout=5
        )
        assert [(b.slot_id, b.coi, b.recorded) for b in calendar.booked] == [
            (slot.slot_id, COI, True)
        ]
        assert status_of(hospital.BookSlot, booking)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert status_of(gmp.BookSlot, booking)[0] == grpc.StatusCode.PERMISSION_DENIED
        facts.slot_booked(COI, GMP, slot.slot_id)

        din = apheresis_din(1)
        facts.package(din)
        wrong = pb.ReceiveUnitRequest(operator=OPERATOR, scanned_din=din, scanned_coi=OTHER_COI)
        code, details = status_of(gmp.ReceiveUnit, wrong)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "coi-mismatch" in details
        receipt = pb.ReceiveUnitRequest(operator=OPERATOR, scanned_din=din, scanned_coi=COI)
        assert gmp.ReceiveUnit(receipt, timeout=5).slot_id == slot.slot_id

        started = gmp.StartBatch(
            pb.StartBatchRequest(operator=OPERATOR, input_dins=[din]), timeout=5
        )
        step = pb.RecordProcessStepRequest(
            operator=OPERATOR,
            batch_id=started.batch_id,
            step_kind="transduction",
            device_type="Lonza Cocoon",
            device_serial="COC-7",
            reagent_lots=["TexMACS-L9"],
            parameters=[pb.ProcessParameter(name="MOI", value="5")],
        )
        code, details = status_of(gmp.RecordProcessStep, step)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "vector lot" in details
        step.vector_lot = "LV-CD19-0031"
        gmp.RecordProcessStep(step, timeout=5)
        gmp.RecordInProcessQc(
            pb.RecordInProcessQcRequest(
                operator=OPERATOR,
                batch_id=started.batch_id,
                test="viability",
                value=91.0,
                unit="%",
                passed=True,
            ),
            timeout=5,
        )
        harvest = pb.HarvestRequest(
            operator=OPERATOR,
            batch_id=started.batch_id,
            product_unit_count=2,
            hold_condition=Condition.CONDITION_CRYO,
        )
        products = gmp.Harvest(harvest, timeout=5).product_dins
        batch = gmp.GetBatch(pb.GetBatchRequest(batch_id=started.batch_id), timeout=5)
        assert (batch.coi, list(batch.input_dins), list(batch.product_dins)) == (
            COI,
            [din],
            list(products),
        )
        assert batch.status == "harvested" and batch.hold_condition == Condition.CONDITION_CRYO
        assert batch.steps[0].vector_lot == "LV-CD19-0031"
        assert status_of(gmp.Harvest, harvest)[0] == grpc.StatusCode.FAILED_PRECONDITION
        missing = pb.GetBatchRequest(batch_id="00000000-0000-4000-8000-000000000000")
        assert status_of(gmp.GetBatch, missing)[0] == grpc.StatusCode.NOT_FOUND
        assert status_of(hospital.GetBatch, missing)[0] == grpc.StatusCode.PERMISSION_DENIED
        health = health_pb2_grpc.HealthStub(gmp_channel)
        request = health_pb2.HealthCheckRequest(service="v2v.manufacturing.v1.ManufacturingService")
        assert health.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_missing_operator_is_invalid(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    running, _ = service
    gmp, channel = stub(pki, running, GMP)
    with channel:
        request = pb.SetSlotCapacityRequest(manufacturing_site_id=GMP, slot_date=DAY, capacity=1)
        assert status_of(gmp.SetSlotCapacity, request)[0] == grpc.StatusCode.INVALID_ARGUMENT


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def test_http_commands_errors_and_openapi(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    operator = {"user_id": "u-op", "printed_name": "Grace Operator"}
    put = client.put(
        f"/v1/calendars/{GMP}/{DAY}",
        json={"operator": operator, "capacity": 2},
        headers=auth(pki, GMP),
    )
    assert put.status_code == 200 and put.json()["capacity"] == 2
    booked = client.post(
        f"/v1/calendars/{GMP}/{DAY}/bookings",
        json={"operator": operator, "coi": COI},
        headers=auth(pki, HOSPITAL),
    )
    assert booked.status_code == 201
    facts.slot_booked(COI, GMP, booked.json()["slot_id"])
    refused = client.post(
        "/v1/receipts",
        json={"operator": operator, "scanned_din": apheresis_din(5), "scanned_coi": COI},
        headers=auth(pki, GMP),
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "unknown-unit" in refused.json()["detail"]
    assert client.post("/v1/receipts", json={}).status_code == 401
    forbidden = client.post(
        "/v1/receipts",
        json={"operator": operator, "scanned_din": "x", "scanned_coi": COI},
        headers=auth(pki, HOSPITAL),
    )
    assert forbidden.status_code == 403
    invalid = client.post("/v1/batches", json={"operator": operator}, headers=auth(pki, GMP))
    assert invalid.status_code == 422
    calendar = client.get(f"/v1/calendars/{GMP}/{DAY}", headers=auth(pki, "AUDIT-1"))
    assert calendar.json()["bookings"] == [
        {
            "slot_id": booked.json()["slot_id"],
            "coi": COI,
            "booking_site_id": HOSPITAL,
            "recorded": True,
        }
    ]
    assert "/v1/batches/{batch_id}/harvest" in client.get("/openapi.json").json()["paths"]


def test_http_spells_conditions_like_every_service(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    """fresh-cold, fresh-ambient, cryo: the shared conditions kernel (v2v_platform.conditions)."""
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    operator = {"user_id": "u-op", "printed_name": "Grace Operator"}
    gmp = auth(pki, GMP)
    client.put(
        f"/v1/calendars/{GMP}/{DAY}", json={"operator": operator, "capacity": 1}, headers=gmp
    )
    booked = client.post(
        f"/v1/calendars/{GMP}/{DAY}/bookings",
        json={"operator": operator, "coi": COI},
        headers=auth(pki, HOSPITAL),
    )
    facts.slot_booked(COI, GMP, booked.json()["slot_id"])
    din = apheresis_din(3)
    facts.package(din, COI, ConditionKernel.FRESH_AMBIENT)
    received = client.post(
        "/v1/receipts",
        json={"operator": operator, "scanned_din": din, "scanned_coi": COI},
        headers=gmp,
    )
    assert received.status_code == 201 and received.json()["condition"] == "fresh-ambient"
    batch = client.post(
        "/v1/batches", json={"operator": operator, "input_dins": [din]}, headers=gmp
    ).json()
    harvest = f"/v1/batches/{batch['batch_id']}/harvest"
    body = {"operator": operator, "product_unit_count": 1}
    old_spelling = client.post(harvest, json={**body, "hold_condition": "fresh_cold"}, headers=gmp)
    assert old_spelling.status_code == 422 and "fresh-cold" in old_spelling.json()["detail"]
    harvested = client.post(harvest, json={**body, "hold_condition": "fresh-cold"}, headers=gmp)
    assert harvested.status_code == 201
    view = client.get(f"/v1/batches/{batch['batch_id']}", headers=gmp).json()
    assert view["hold_condition"] == "fresh-cold"
