"""Clinical times through the adapters (issue 14): a batch entered after the fact over HTTP and
gRPC keeps when each step happened; a step before what it follows is refused naming the field
(422 / INVALID_ARGUMENT)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Condition, Operator
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
HARVESTED = COLLECTION_END + timedelta(hours=15)


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


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def booked(client: TestClient, pki: Path, facts: InMemoryManufacturingFacts, n: int) -> str:
    """Unit `n` packaged for COI, a slot booked for it at GMP."""
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
    return din


def test_http_batch_entered_after_the_fact(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    gmp = auth(pki, GMP)
    din = booked(client, pki, facts, 1)
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
    assert received.status_code == 201
    early = {"operator": OPERATOR, "input_dins": [din]}
    refused = client.post(
        "/v1/batches",
        json={**early, "started_at": (RECEIVED - timedelta(hours=1)).isoformat()},
        headers=gmp,
    )
    assert refused.status_code == 422 and "started_at" in refused.json()["detail"]
    naive = client.post(
        "/v1/batches", json={**early, "started_at": "2025-06-01T15:00:00"}, headers=gmp
    )
    assert naive.status_code == 422  # a clinical time carries its zone
    batch = client.post(
        "/v1/batches", json={**early, "started_at": STARTED.isoformat()}, headers=gmp
    ).json()
    harvest = f"/v1/batches/{batch['batch_id']}/harvest"
    body = {"operator": OPERATOR, "product_unit_count": 1, "hold_condition": "cryo"}
    too_early = client.post(
        harvest, json={**body, "harvested_at": STARTED.isoformat()[:-6] + "+01:00"}, headers=gmp
    )
    assert too_early.status_code == 422 and "harvested_at" in too_early.json()["detail"]
    harvested = client.post(
        harvest, json={**body, "harvested_at": HARVESTED.isoformat()}, headers=gmp
    )
    assert harvested.status_code == 201
    view = client.get(f"/v1/batches/{batch['batch_id']}", headers=gmp).json()
    assert view["started_at"].startswith(STARTED.isoformat()[:19])


def test_grpc_batch_entered_after_the_fact(
    pki: Path, service: tuple[ManufacturingService, InMemoryManufacturingFacts]
) -> None:
    running, facts = service
    client = TestClient(running.http_app, raise_server_exceptions=False)
    din = booked(client, pki, facts, 2)
    assert running.grpc is not None
    channel = secure_channel(
        f"127.0.0.1:{running.grpc.port}", channel_credentials(SiteTlsFiles.for_site(pki, GMP))
    )
    gmp = pb_grpc.ManufacturingServiceStub(channel)
    operator = Operator(user_id="u-op", printed_name="Grace Operator")
    gmp.ReceiveUnit(
        pb.ReceiveUnitRequest(
            operator=operator, scanned_din=din, scanned_coi=COI, received_at=timestamp(RECEIVED)
        ),
        timeout=5,
    )
    started = gmp.StartBatch(
        pb.StartBatchRequest(operator=operator, input_dins=[din], started_at=timestamp(STARTED)),
        timeout=5,
    )
    with pytest.raises(grpc.RpcError) as refused:
        gmp.FailBatch(
            pb.FailBatchRequest(
                operator=operator,
                batch_id=started.batch_id,
                reason="no growth",
                failed_at=timestamp(STARTED - timedelta(minutes=5)),
            ),
            timeout=5,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "failed_at" in refused.value.details()
    gmp.Harvest(
        pb.HarvestRequest(
            operator=operator,
            batch_id=started.batch_id,
            product_unit_count=1,
            hold_condition=Condition.CONDITION_CRYO,
            harvested_at=timestamp(HARVESTED),
        ),
        timeout=5,
    )
    view = gmp.GetBatch(pb.GetBatchRequest(batch_id=started.batch_id), timeout=5)
    assert (from_timestamp(view.started_at), view.status) == (STARTED, "harvested")
    channel.close()
