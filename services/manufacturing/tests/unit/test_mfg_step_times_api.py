"""Clinical times of process steps and in-process QC through the adapters (issue 14): a batch
entered after the fact over HTTP and gRPC keeps when each step was performed and each QC
measured; a step or QC before what it follows is refused naming the field (422 /
INVALID_ARGUMENT)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Operator
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as pb_grpc
from v2v_manufacturing.bootstrap import ManufacturingService, bootstrap
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.conditions import Condition as ConditionKernel
from v2v_platform.proto_values import from_timestamp, timestamp
from v2v_testkit.manufacturing import (
    COI,
    COLLECTION_END,
    DAY,
    FIN,
    GMP,
    HOSPITAL,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    declare_din_block,
)

SITES = [f"{HOSPITAL}:collection", f"{GMP}:manufacturing"]
OPERATOR = {"user_id": "u-op", "printed_name": "Grace Operator"}
RECEIVED = COLLECTION_END + timedelta(hours=3)
STARTED = COLLECTION_END + timedelta(hours=5)
D = timedelta(days=1)
SELECTION = {
    "step_kind": "selection",
    "device_type": "CliniMACS Prodigy",
    "device_serial": "PRD-0042",
    "reagent_lots": ["CD4/CD8-L1"],
}
VIABILITY = {"test": "viability", "value": 91.0, "unit": "%", "passed": True}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    declare_din_block(directory)
    return directory


@pytest.fixture
def service(pki: Path) -> Iterator[tuple[ManufacturingService, InMemoryManufacturingFacts]]:
    """The service a month after the batches it is told about."""
    facts = InMemoryManufacturingFacts()
    facts.enrolled(COI, HOSPITAL)
    settings = ManufacturingSettings(
        site_id=GMP, fin=FIN, pki_dir=pki, postgres_dsn=None, sqlite_path=None
    )
    running = bootstrap(settings, facts=facts, clock=Clock(COLLECTION_END + 30 * D))
    running.start_grpc("127.0.0.1:0")
    yield running, facts
    running.stop()


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def started_batch(client: TestClient, pki: Path, facts: InMemoryManufacturingFacts, n: int) -> str:
    """Unit `n` packaged for COI, booked, received and started at GMP (after the fact)."""
    gmp = auth(pki, GMP)
    client.put(
        f"/v1/calendars/{GMP}/{DAY}", json={"operator": OPERATOR, "capacity": 2}, headers=gmp
    )
    slot = client.post(
        f"/v1/calendars/{GMP}/{DAY}/bookings",
        json={"operator": OPERATOR, "coi": COI},
        headers=auth(pki, HOSPITAL),
    )
    facts.slot_booked(COI, GMP, slot.json()["slot_id"])
    din = apheresis_din(n)
    facts.package(din, COI, ConditionKernel.FRESH_COLD)
    received = client.post(
        "/v1/receipts",
        json={
            "operator": OPERATOR,
            "scanned_din": din,
            "scanned_coi": COI,
            "received_at": RECEIVED.isoformat(),
        },
        headers=gmp,
    )
    assert received.status_code == 201, received.text
    batch = client.post(
        "/v1/batches",
        json={"operator": OPERATOR, "input_dins": [din], "started_at": STARTED.isoformat()},
        headers=gmp,
    )
    assert batch.status_code == 201, batch.text
    return str(batch.json()["batch_id"])


def test_http_steps_and_qc_at_their_clinical_times(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    gmp = auth(pki, GMP)
    batch_id = started_batch(client, pki, facts, 1)
    steps, qc = f"/v1/batches/{batch_id}/steps", f"/v1/batches/{batch_id}/qc-results"
    step = {"operator": OPERATOR, **SELECTION}
    early = (STARTED - timedelta(minutes=1)).isoformat()
    refused = client.post(steps, json={**step, "performed_at": early}, headers=gmp)
    assert refused.status_code == 422 and "performed_at" in refused.json()["detail"]
    refused = client.post(
        qc, json={"operator": OPERATOR, **VIABILITY, "measured_at": early}, headers=gmp
    )
    assert refused.status_code == 422 and "measured_at" in refused.json()["detail"]
    naive = client.post(steps, json={**step, "performed_at": "2025-06-03T10:00:00"}, headers=gmp)
    assert naive.status_code == 422  # a clinical time carries its zone
    performed = STARTED + 2 * D
    done = client.post(steps, json={**step, "performed_at": performed.isoformat()}, headers=gmp)
    assert done.status_code == 204, done.text
    before_previous = client.post(
        steps,
        json={**step, "step_kind": "activation", "performed_at": (STARTED + D).isoformat()},
        headers=gmp,
    )
    assert before_previous.status_code == 422
    assert "performed_at" in before_previous.json()["detail"]
    measured = STARTED + 9 * D
    done = client.post(
        qc,
        json={"operator": OPERATOR, **VIABILITY, "measured_at": measured.isoformat()},
        headers=gmp,
    )
    assert done.status_code == 204, done.text
    harvest = {"operator": OPERATOR, "product_unit_count": 1, "hold_condition": "cryo"}
    harvested = client.post(
        f"/v1/batches/{batch_id}/harvest",
        json={**harvest, "harvested_at": (STARTED + 10 * D).isoformat()},
        headers=gmp,
    )
    assert harvested.status_code == 201, harvested.text
    view = client.get(f"/v1/batches/{batch_id}", headers=gmp).json()
    assert [s["performed_at"][:19] for s in view["steps"]] == [performed.isoformat()[:19]]
    assert [at[:19] for at in view["qc_measured_at"]] == [measured.isoformat()[:19]]


def test_grpc_steps_and_qc_at_their_clinical_times(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    batch_id = started_batch(client, pki, facts, 2)
    assert running.grpc is not None
    channel = secure_channel(
        f"127.0.0.1:{running.grpc.port}", channel_credentials(SiteTlsFiles.for_site(pki, GMP))
    )
    gmp = pb_grpc.ManufacturingServiceStub(channel)
    operator = Operator(user_id="u-op", printed_name="Grace Operator")

    def step(kind: str, at: timedelta) -> pb.RecordProcessStepRequest:
        return pb.RecordProcessStepRequest(
            operator=operator,
            batch_id=batch_id,
            step_kind=kind,
            device_type="CliniMACS Prodigy",
            device_serial="PRD-0042",
            reagent_lots=["L-1"],
            performed_at=timestamp(STARTED + at),
        )

    def qc(at: timedelta) -> pb.RecordInProcessQcRequest:
        return pb.RecordInProcessQcRequest(
            operator=operator,
            batch_id=batch_id,
            test="viability",
            value=91.0,
            unit="%",
            passed=True,
            measured_at=timestamp(STARTED + at),
        )

    with pytest.raises(grpc.RpcError) as refused:
        gmp.RecordInProcessQc(qc(-timedelta(hours=1)), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "measured_at" in refused.value.details()
    gmp.RecordProcessStep(step("selection", 3 * D), timeout=5)
    with pytest.raises(grpc.RpcError) as refused:
        gmp.RecordProcessStep(step("activation", 2 * D), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "performed_at" in refused.value.details()
    gmp.RecordInProcessQc(qc(8 * D), timeout=5)
    with pytest.raises(grpc.RpcError) as refused:
        gmp.FailBatch(
            pb.FailBatchRequest(
                operator=operator,
                batch_id=batch_id,
                reason="no expansion",
                failed_at=timestamp(STARTED + 7 * D),
            ),
            timeout=5,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "failed_at" in refused.value.details()
    gmp.FailBatch(
        pb.FailBatchRequest(
            operator=operator,
            batch_id=batch_id,
            reason="no expansion",
            failed_at=timestamp(STARTED + 8 * D),
        ),
        timeout=5,
    )
    view = gmp.GetBatch(pb.GetBatchRequest(batch_id=batch_id), timeout=5)
    assert [from_timestamp(s.performed_at) for s in view.steps] == [STARTED + 3 * D]
    assert [from_timestamp(q.measured_at) for q in view.qc_results] == [STARTED + 8 * D]
    assert view.status == "failed"
    channel.close()
