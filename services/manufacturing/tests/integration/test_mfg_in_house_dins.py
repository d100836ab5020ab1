"""An in-house site (issue 14): collection and manufacturing are departments of ONE site with
ONE FIN (ISBT 128 gives a facility one FIN). Intake and manufacturing run as separate processes
on PostgreSQL and Kafka with the same V2V_FIN; intake labels apheresis bags, manufacturing
receives them and harvests products. Before declared DIN blocks both numbered from 1 under
the FIN, so `Harvest` gave products the DINs of bags already labelled (S12342600000200 bound
to two patients). Now each numbers from its own declared block: no DIN is issued twice. A
service whose block overlaps the other's does not start, and says why."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import CONDITION_FRESH_COLD, ESignatureRequest, Operator
from v2v.intake.v1 import intake_service_pb2 as intake_pb
from v2v.intake.v1 import intake_service_pb2_grpc as intake_grpc
from v2v.manufacturing.v1 import manufacturing_service_pb2 as mfg_pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as mfg_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.din_allocation import (
    DinAllocations,
    DinBlock,
    IssuingService,
    declare_all,
)
from v2v_platform.esign import Signer, hash_password, open_signer_store
from v2v_platform.ids import Din
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.processes import ServiceProcess, fresh_database, start_service
from v2v_platform.testing.producing import eventually

pytestmark = pytest.mark.integration
SITE = "SHEBA"  # collection, GMP and ward are departments of this one site
NURSES = (
    Operator(user_id="n-1", printed_name="Nurse One"),
    Operator(user_id="n-2", printed_name="Nurse Two"),
)
PASSWORDS = {"n-1": "nurse one's own password", "n-2": "nurse two's own password"}
OPERATOR = Operator(user_id="m-1", printed_name="GMP Operator")
INTAKE = IssuingService(SITE, "intake")
MANUFACTURING = IssuingService(SITE, "manufacturing")


@pytest.fixture
def fin() -> str:
    """A fresh FIN per run: COIs and DINs stay unique even on a reused broker."""
    return f"S{random.randrange(10_000):04d}"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, [parse_site_spec(f"{SITE}:collection,manufacturing,qc,infusion")])
    return directory


@pytest.fixture
def site(
    tmp_path: Path, pki: Path, fin: str, kafka_bootstrap: str, postgres_database: PostgresDatabase
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    declare_all(pki, [(fin, INTAKE), (fin, MANUFACTURING)])  # as `v2v_simulator`, compose do
    common = {"V2V_PKI_DIR": str(pki), "V2V_KAFKA_BOOTSTRAP": kafka_bootstrap, "V2V_FIN": fin}
    mfg_db = fresh_database(postgres_database.dsn, f"{postgres_database.dbname}_inhouse_mfg")
    manufacturing = start_service(
        "v2v_manufacturing", {**common, "V2V_SITE_ID": SITE, "V2V_POSTGRES_DSN": mfg_db}, tmp_path
    )
    eventually(lambda: manufacturing.healthy(pki, SITE), "manufacturing to serve")
    signers = open_signer_store(postgres_database.dsn, None)  # `v2v signer add` does this
    for nurse in NURSES:
        hashed = hash_password(PASSWORDS[nurse.user_id])
        signers.put(
            Signer(SITE, nurse.user_id, nurse.printed_name, frozenset({"collection"}), hashed)
        )
    intake = start_service(
        "v2v_intake",
        {
            **common,
            "V2V_SITE_ID": SITE,
            "V2V_POSTGRES_DSN": postgres_database.dsn,
            "V2V_MANUFACTURING_TARGET": f"127.0.0.1:{manufacturing.grpc_port}",
        },
        tmp_path,
    )
    eventually(lambda: intake.healthy(pki, SITE), "intake to serve")
    yield intake, manufacturing
    stopped = {p.module: p.stop() for p in (intake, manufacturing)}
    assert stopped == {"v2v_intake": 0, "v2v_manufacturing": 0}, stopped


def stub(stub_class: Any, process: ServiceProcess, pki: Path) -> Any:
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, SITE))
    return stub_class(secure_channel(f"127.0.0.1:{process.grpc_port}", credentials))


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def labelled_bags(intake: Any, slot_day: str, count: int) -> tuple[str, list[str]]:
    """A patient enrolled, a slot booked at this site's GMP, a collection labelled into
    `count` bags, each verified by two nurses and packaged for manufacturing here."""
    nurse = NURSES[0]
    ended = datetime.now(UTC) - timedelta(hours=1)
    coi = intake.EnrolPatient(
        intake_pb.EnrolPatientRequest(
            operator=nurse,
            patient_pseudonym=f"PSN-{time.time_ns()}",
            personal_details=intake_pb.PersonalDetails(
                given_name="Ada", family_name="Example", mrn="MRN-1", birth_date="1970-01-01"
            ),
            treating_site_id=SITE,
            enrolled_at=stamp(ended - timedelta(days=2)),  # no collection before enrolment
        ),
        timeout=5,
    ).coi
    slot = intake.BookSlot(
        intake_pb.BookSlotRequest(
            operator=nurse, coi=coi, manufacturing_site_id=SITE, slot_date=slot_day
        ),
        timeout=35,  # above intake's retry while PatientEnrolled reaches manufacturing
    ).slot
    collection_id = intake.RecordCollection(
        intake_pb.RecordCollectionRequest(
            operator=nurse,
            coi=coi,
            started_at=stamp(ended - timedelta(hours=4)),
            ended_at=stamp(ended),
            volume_ml=212.5,
            total_nucleated_cells_e9=12.4,
            cd3_cells_e9=6.1,
            slot_id=slot.slot_id,
        ),
        timeout=5,
    ).collection_id
    labels = intake_pb.LabelUnitsRequest(
        operator=nurse, coi=coi, collection_id=collection_id, count=count, unit_kind="apheresis-bag"
    )
    dins = list(intake.LabelUnits(labels, timeout=5).dins)
    for din in dins:
        for scanner in NURSES:
            signature = ESignatureRequest(
                user_id=scanner.user_id, password=PASSWORDS[scanner.user_id], meaning="verification"
            )
            intake.VerifyLabel(
                intake_pb.VerifyLabelRequest(
                    operator=scanner,
                    coi=coi,
                    din=din,
                    scanned_din=din,
                    scanned_coi=coi,
                    signature=signature,
                ),
                timeout=5,
            )
        intake.PackageUnit(
            intake_pb.PackageUnitRequest(
                operator=nurse,
                coi=coi,
                din=din,
                condition=CONDITION_FRESH_COLD,
                manufacturing_site_id=SITE,
                temperature_c=4.0,
            ),
            timeout=5,
        )
    return coi, dins


def harvested(
    gmp: Any, process: ServiceProcess, coi: str, dins: list[str], count: int
) -> list[str]:
    """Receive the bags once intake's facts arrived, run a batch, harvest `count` products."""

    def expected() -> list[str]:
        process.check_alive()
        units = gmp.ListExpectedUnits(mfg_pb.ListExpectedUnitsRequest(coi=coi), timeout=5).units
        return [u.din for u in units] if len(units) == len(dins) else []

    assert sorted(eventually(expected, "intake's bags known to manufacturing")) == sorted(dins)
    for din in dins:
        request = mfg_pb.ReceiveUnitRequest(operator=OPERATOR, scanned_din=din, scanned_coi=coi)
        assert gmp.ReceiveUnit(request, timeout=5).coi == coi
    batch = gmp.StartBatch(mfg_pb.StartBatchRequest(operator=OPERATOR, input_dins=dins), timeout=5)
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
    harvest = mfg_pb.HarvestRequest(
        operator=OPERATOR,
        batch_id=batch.batch_id,
        product_unit_count=count,
        hold_condition=CONDITION_FRESH_COLD,
    )
    return list(gmp.Harvest(harvest, timeout=5).product_dins)


def test_an_in_house_site_never_issues_one_din_twice(
    site: tuple[ServiceProcess, ServiceProcess], pki: Path, fin: str
) -> None:
    intake_process, mfg_process = site
    intake = stub(intake_grpc.IntakeServiceStub, intake_process, pki)
    gmp = stub(mfg_grpc.ManufacturingServiceStub, mfg_process, pki)
    slot_day = (date.today() + timedelta(days=1)).isoformat()
    capacity = mfg_pb.SetSlotCapacityRequest(
        operator=OPERATOR, manufacturing_site_id=SITE, slot_date=slot_day, capacity=2
    )
    gmp.SetSlotCapacity(capacity, timeout=5)

    # the issue's sequence: three bags labelled, then two products harvested, then more bags
    first_coi, first_bags = labelled_bags(intake, slot_day, 3)
    products = harvested(gmp, mfg_process, first_coi, first_bags, 2)
    second_coi, second_bags = labelled_bags(intake, slot_day, 2)

    issued = [Din.parse(text) for text in [*first_bags, *products, *second_bags]]
    assert {din.fin for din in issued} == {fin}  # one FIN for the whole site
    assert len({din.data for din in issued}) == len(issued) == 7  # no DIN issued twice
    bags = [int(Din.parse(text).sequence) for text in [*first_bags, *second_bags]]
    made = [int(Din.parse(text).sequence) for text in products]
    assert bags == [1, 2, 3, 4, 5]  # intake's block: 1-499999
    assert made == [500_000, 500_001]  # manufacturing's block: 500000-999999
    assert first_coi != second_coi


def test_a_service_whose_block_overlaps_does_not_start(
    tmp_path: Path, pki: Path, fin: str, kafka_bootstrap: str
) -> None:
    DinAllocations(
        (DinBlock(fin, INTAKE, 1, 600_000), DinBlock(fin, MANUFACTURING, 500_000, 999_999))
    ).write(pki)
    env = {
        "V2V_PKI_DIR": str(pki),
        "V2V_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "V2V_FIN": fin,
        "V2V_SITE_ID": SITE,
    }
    refused = start_service("v2v_manufacturing", env, tmp_path)
    assert refused.popen is not None
    assert refused.popen.wait(timeout=60) == 2  # a configuration error: it never served
    log = refused.log_tail()
    assert f"FIN {fin}, issuer {SITE}/manufacturing: its DIN block 500000-999999 overlaps" in log
    assert f"{SITE}/intake's block 1-600000" in log
