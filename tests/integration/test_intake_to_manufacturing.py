"""Intake and manufacturing as separate processes on PostgreSQL and Kafka: a journey end to end.

A collection site enrols a patient, books a slot at the GMP site (intake calls manufacturing
over mTLS gRPC), collects, labels, verifies and packages two bags; intake's events reach
manufacturing only through Kafka; the GMP site receives the bags (one wrong scan refused),
runs a batch and harvests product units whose lineage points back to the bags, all with the
same COI. Both topics then verify: hash chains, signatures, key = COI.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
import httpx
import pytest

from v2v.common.v1.common_pb2 import CONDITION_FRESH_COLD, ESignatureRequest, Operator
from v2v.intake.v1 import intake_service_pb2 as intake_pb
from v2v.intake.v1 import intake_service_pb2_grpc as intake_grpc
from v2v.manufacturing.v1 import manufacturing_service_pb2 as mfg_pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as mfg_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.din_allocation import IssuingService, declare_all
from v2v_platform.envelope import ChainVerifier, KeyRing, Location, decode
from v2v_platform.esign import Signer, hash_password, open_signer_store
from v2v_platform.ids import Coi
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.kafka_topics import read_topic
from v2v_platform.testing.processes import ServiceProcess, fresh_database, start_service
from v2v_platform.testing.producing import eventually

pytestmark = pytest.mark.integration
T = TypeVar("T")
DEADLINE_S = 60
HOSPITAL, GMP = "HOSP-A", "GMP-B"
NURSE_1 = Operator(user_id="n-1", printed_name="Nurse One")
NURSE_2 = Operator(user_id="n-2", printed_name="Nurse Two")
PASSWORDS = {"n-1": "nurse one's own password", "n-2": "nurse two's own password"}
"""Each label scanner's own password (intake's signer store, signer role "collection")."""
OPERATOR = Operator(user_id="m-1", printed_name="GMP Operator")


@pytest.fixture
def system(
    tmp_path: Path, kafka_bootstrap: str, postgres_database: Any
) -> Iterator[tuple[Path, ServiceProcess, ServiceProcess]]:
    pki = tmp_path / "pki"
    init_pki(
        pki,
        [
            parse_site_spec(f"{HOSPITAL}:collection,infusion"),
            parse_site_spec(f"{GMP}:manufacturing,qc"),
        ],
    )
    # A fresh facility number per run: COIs are unique for good, even on a reused broker.
    fin = f"{random.choice('ABCDEFGHJKLMN')}{random.randrange(10_000):04d}"
    issuers = [
        ("B1234", IssuingService(GMP, "manufacturing")),
        (fin, IssuingService(HOSPITAL, "intake")),
    ]
    declare_all(pki, issuers)  # each DIN issuer's declared block
    common = {"V2V_PKI_DIR": str(pki), "V2V_KAFKA_BOOTSTRAP": kafka_bootstrap}
    mfg_db = fresh_database(postgres_database.dsn, f"{postgres_database.dbname}_mfg")
    manufacturing = start_service(
        "v2v_manufacturing",
        {**common, "V2V_SITE_ID": GMP, "V2V_FIN": "B1234", "V2V_POSTGRES_DSN": mfg_db},
        tmp_path,
    )
    eventually(lambda: manufacturing.healthy(pki, HOSPITAL), "manufacturing to serve")
    signers = open_signer_store(postgres_database.dsn, None)  # `v2v signer add` does this
    for nurse in (NURSE_1, NURSE_2):
        hashed = hash_password(PASSWORDS[nurse.user_id])
        roles = frozenset({"collection"})
        signers.put(Signer(HOSPITAL, nurse.user_id, nurse.printed_name, roles, hashed))
    intake = start_service(
        "v2v_intake",
        {
            **common,
            "V2V_SITE_ID": HOSPITAL,
            "V2V_FIN": fin,
            "V2V_POSTGRES_DSN": postgres_database.dsn,
            "V2V_MANUFACTURING_TARGET": f"127.0.0.1:{manufacturing.grpc_port}",
        },
        tmp_path,
    )
    eventually(lambda: intake.healthy(pki, HOSPITAL), "intake to serve")
    yield pki, intake, manufacturing
    stopped = {p.module: p.stop() for p in (intake, manufacturing)}
    assert stopped == {"v2v_intake": 0, "v2v_manufacturing": 0}, stopped


def _stub(stub_class: Any, process: ServiceProcess, pki: Path, site: str) -> Any:
    channel = secure_channel(
        f"127.0.0.1:{process.grpc_port}", channel_credentials(SiteTlsFiles.for_site(pki, site))
    )
    return stub_class(channel)


def test_a_collection_becomes_product_units_with_lineage(
    system: tuple[Path, ServiceProcess, ServiceProcess], kafka_bootstrap: str
) -> None:
    pki, intake_process, mfg_process = system
    intake = _stub(intake_grpc.IntakeServiceStub, intake_process, pki, HOSPITAL)
    gmp = _stub(mfg_grpc.ManufacturingServiceStub, mfg_process, pki, GMP)
    slot_day = (date.today() + timedelta(days=1)).isoformat()
    gmp.SetSlotCapacity(
        mfg_pb.SetSlotCapacityRequest(
            operator=OPERATOR, manufacturing_site_id=GMP, slot_date=slot_day, capacity=2
        ),
        timeout=5,
    )

    # Collection site, over gRPC (and HTTP for one command): enrol, book, collect, label.
    coi = intake.EnrolPatient(
        intake_pb.EnrolPatientRequest(
            operator=NURSE_1,
            patient_pseudonym=f"PSN-{time.time_ns()}",
            personal_details=intake_pb.PersonalDetails(
                given_name="Ada", family_name="Example", mrn="MRN-1", birth_date="1970-01-01"
            ),
            treating_site_id=HOSPITAL,
            enrolled_at=timestamp(datetime.now(UTC) - timedelta(days=1)),
        ),
        timeout=5,
    ).coi
    assert Coi.parse(coi)
    slot = intake.BookSlot(
        intake_pb.BookSlotRequest(
            operator=NURSE_1, coi=coi, manufacturing_site_id=GMP, slot_date=slot_day
        ),
        timeout=35,  # above intake's retry while PatientEnrolled reaches manufacturing
    ).slot
    ended = datetime.now(UTC) - timedelta(hours=1)
    token = issue_site_token(pki, HOSPITAL)
    response = httpx.post(
        f"http://127.0.0.1:{intake_process.http_port}/v1/therapies/{coi}/collections",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "operator": {"user_id": NURSE_1.user_id, "printed_name": NURSE_1.printed_name},
            "started_at": (ended - timedelta(hours=4)).isoformat(),
            "ended_at": ended.isoformat(),
            "volume_ml": 212.5,
            "total_nucleated_cells_e9": 12.4,
            "cd3_cells_e9": 6.1,
            "slot_id": slot.slot_id,
        },
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    collection_id = response.json()["collection_id"]
    dins = list(
        intake.LabelUnits(
            intake_pb.LabelUnitsRequest(
                operator=NURSE_1,
                coi=coi,
                collection_id=collection_id,
                count=2,
                unit_kind="apheresis-bag",
            ),
            timeout=5,
        ).dins
    )
    for din in dins:
        for nurse in (NURSE_1, NURSE_2):
            intake.VerifyLabel(
                intake_pb.VerifyLabelRequest(
                    operator=nurse,
                    coi=coi,
                    din=din,
                    scanned_din=din,
                    scanned_coi=coi,
                    signature=ESignatureRequest(
                        user_id=nurse.user_id,
                        password=PASSWORDS[nurse.user_id],
                        meaning="verification",
                    ),
                ),
                timeout=5,
            )
        intake.PackageUnit(
            intake_pb.PackageUnitRequest(
                operator=NURSE_1,
                coi=coi,
                din=din,
                condition=CONDITION_FRESH_COLD,
                manufacturing_site_id=GMP,
                temperature_c=4.0,
            ),
            timeout=5,
        )

    # GMP site: wait until intake's facts arrived through Kafka, then receive and manufacture.
    def expected() -> list[str]:
        mfg_process.check_alive()
        reply = gmp.ListExpectedUnits(mfg_pb.ListExpectedUnitsRequest(coi=coi), timeout=5)
        ready = [u.din for u in reply.units if u.slot_id == slot.slot_id]
        return ready if len(ready) == 2 else []

    assert sorted(eventually(expected, "intake's events to reach manufacturing")) == sorted(dins)
    with pytest.raises(grpc.RpcError) as wrong_bag:
        gmp.ReceiveUnit(
            mfg_pb.ReceiveUnitRequest(
                operator=OPERATOR, scanned_din=dins[0], scanned_coi="CHA123425999999"
            ),
            timeout=5,
        )
    assert wrong_bag.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for din in dins:
        received = gmp.ReceiveUnit(
            mfg_pb.ReceiveUnitRequest(operator=OPERATOR, scanned_din=din, scanned_coi=coi),
            timeout=5,
        )
        assert received.coi == coi
    batch = gmp.StartBatch(mfg_pb.StartBatchRequest(operator=OPERATOR, input_dins=dins), timeout=5)
    assert batch.coi == coi
    gmp.RecordProcessStep(
        mfg_pb.RecordProcessStepRequest(
            operator=OPERATOR,
            batch_id=batch.batch_id,
            step_kind="transduction",
            device_type="CliniMACS Prodigy",
            device_serial="PRO-0042",
            reagent_lots=["TC-77"],
            vector_lot="LV-2025-011",
        ),
        timeout=5,
    )
    gmp.RecordInProcessQc(
        mfg_pb.RecordInProcessQcRequest(
            operator=OPERATOR,
            batch_id=batch.batch_id,
            test="viability",
            value=91.0,
            unit="%",
            passed=True,
        ),
        timeout=5,
    )
    products = list(
        gmp.Harvest(
            mfg_pb.HarvestRequest(
                operator=OPERATOR,
                batch_id=batch.batch_id,
                product_unit_count=2,
                hold_condition=CONDITION_FRESH_COLD,
            ),
            timeout=5,
        ).product_dins
    )
    lineage = gmp.GetBatch(mfg_pb.GetBatchRequest(batch_id=batch.batch_id), timeout=5)
    assert (lineage.coi, sorted(lineage.input_dins)) == (coi, sorted(dins))
    assert sorted(lineage.product_dins) == sorted(products) and len(set(products) | set(dins)) == 4

    # Both topics: every event of this COI keyed by it, chained, signed by its site.
    ring = KeyRing.load(pki / "signing-keys.json")

    def published(topic: str, needed: set[str]) -> list[tuple[Location, Any]]:
        records = read_topic(kafka_bootstrap, topic, lambda r: r.key == coi.encode())
        types = {decode(r.value).event_type.rsplit(".", 1)[-1] for _, r in records}
        return records if needed <= types else []

    intake_records = eventually(
        lambda: published("v2v.intake.events.v1", {"PatientEnrolled", "UnitPackaged"}),
        "intake's events on Kafka",
    )
    mfg_records = eventually(
        lambda: published("v2v.manufacturing.events.v1", {"BatchStarted", "ProductUnitsCreated"}),
        "manufacturing's events on Kafka",
    )
    verifier = ChainVerifier(ring)
    breaks = [
        b for loc, r in intake_records + mfg_records for b in verifier.feed_bytes(r.value, loc)
    ]
    assert breaks == []
    sites = {decode(r.value).site_id for _, r in mfg_records}
    assert sites == {GMP}
    print(
        json.dumps(
            {
                "coi": coi,
                "intake_events": len(intake_records),
                "manufacturing_events": len(mfg_records),
            }
        )
    )
