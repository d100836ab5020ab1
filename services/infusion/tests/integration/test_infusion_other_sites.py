"""Each site acts only on its own patients, on PostgreSQL + Kafka (issue 13): two treating
sites' infusion services, HOSP-A and HOSP-B, each with its own database, facts consumer and
relay, over gRPC (mTLS) and HTTP (site tokens).

- HOSP-B reads none of HOSP-A's units or alerts at HOSP-A's service, and no ward reads the
  units of another site's patients at its own service (404 / NOT_FOUND, an empty alert list);
  an auditor reads them all.
- A bag infused at HOSP-A, its patient's treating site, is refused at HOSP-B's ward at
  receipt (`not-treating-site`); HOSP-B's two nurses cannot verify or infuse it, and nothing
  HOSP-B records is published under that patient's COI.
- A unit infused anywhere (here: HOSP-C's relay, as far as HOSP-B can tell) is refused at
  HOSP-B's receipt, bedside and infusion (`already-infused`), though its patient is HOSP-B's.

Manufacturing, release, intake and HOSP-C are not under test: their signed envelopes are
produced onto their topics directly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as pb_grpc
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.bootstrap import InfusionService, bootstrap
from v2v_infusion.domain.values import ReleaseStatus
from v2v_infusion.settings import InfusionSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.esign import open_signer_store
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing import infra
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.infusion import nurse_signer, password_of

pytestmark = pytest.mark.integration

HOSP_A, HOSP_B, HOSP_C, GMP, QC, AUDITOR = "HOSP-A", "HOSP-B", "HOSP-C", "GMP-B", "QC-1", "AUDIT-1"
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")
NED = Operator(user_id="u-nurse-2", printed_name="Ned Nurse")
BERT = Operator(user_id="b-nurse", printed_name="Bert Nurse")
BEA = Operator(user_id="b-nurse-2", printed_name="Bea Nurse")
THIRD = Operator(user_id="b-3", printed_name="Third Nurse")
WARD_NURSES = {HOSP_A: (NORA, NED), HOSP_B: (BERT, BEA, THIRD)}
"""Registered in each ward's signer store, each with their own password."""


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [
        f"{HOSP_A}:collection,infusion",
        f"{HOSP_B}:collection,infusion",
        f"{HOSP_C}:infusion",
        f"{GMP}:manufacturing",
        f"{QC}:qc",
        f"{AUDITOR}:auditor",
    ]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


def started(pki: Path, site: str, dsn: str, kafka: str) -> InfusionService:
    settings = InfusionSettings(site_id=site, pki_dir=pki, postgres_dsn=dsn, kafka_bootstrap=kafka)
    signers = open_signer_store(dsn, None)  # `v2v signer add` does this
    for nurse in WARD_NURSES[site]:
        signers.put(nurse_signer(nurse.user_id, nurse.printed_name, site))
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    running.start_facts_consumer(group_id=f"infusion-sites-{random.getrandbits(32):08x}")
    return running


@pytest.fixture
def ward_a(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[InfusionService]:
    running = started(pki, HOSP_A, postgres_database.dsn, kafka_bootstrap)
    yield running
    running.stop()


@pytest.fixture
def ward_b(pki: Path, postgres_dsn: str, kafka_bootstrap: str) -> Iterator[InfusionService]:
    database = infra.create_database(postgres_dsn)
    running = started(pki, HOSP_B, database.dsn, kafka_bootstrap)
    try:
        yield running
    finally:
        running.stop()
        infra.drop_database(postgres_dsn, database.dbname)


def stand_in(pki: Path, kafka: str, site: str, context: str, role: str, kind: str) -> Any:
    """Another context's (or another site's) relay, as far as infusion can tell."""
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    actor = Actor(f"u-{role}", f"{role.title()} User", role)
    return SignedEnvelopeProducer(kafka, f"v2v.{context}.events.v1", signer, actor, kind)


@dataclass
class Patient:
    coi: str
    dins: list[str]
    batch_id: str
    treating_site: str


def patient(treating_site: str, units: int = 1) -> Patient:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    dins = [str(issue_din("W1234", 25, random.randint(1, 999_999))) for _ in range(units)]
    return Patient(coi, dins, str(uuid4()), treating_site)


def publish_upstream(pki: Path, kafka: str, *patients: Patient) -> None:
    """Enrolment (intake), product units (manufacturing), provisional release (release)."""
    released_at = datetime.now(UTC) - timedelta(hours=3)
    for one in patients:
        hospital = stand_in(pki, kafka, one.treating_site, "intake", "collection", "Therapy")
        gmp = stand_in(pki, kafka, GMP, "manufacturing", "manufacturing", "Batch")
        qc = stand_in(pki, kafka, QC, "release", "qc", "BatchRelease")
        hospital.publish(
            one.coi,
            intake.PatientEnrolled(
                coi=one.coi,
                patient_pseudonym=f"p-{uuid4()}",
                enrolling_site_id=one.treating_site,
                treating_site_id=one.treating_site,
            ),
        )
        gmp.publish(
            one.coi,
            manufacturing.ProductUnitsCreated(
                coi=one.coi,
                batch_id=one.batch_id,
                product_dins=one.dins,
                hold_condition=Condition.CONDITION_FRESH_COLD,
                created_at=timestamp(released_at - timedelta(hours=1)),
            ),
        )
        qc.publish(
            one.coi,
            release.ProvisionallyCertified(
                coi=one.coi,
                batch_id=one.batch_id,
                spec_version="v1",
                product_dins=one.dins,
                certified_at=timestamp(released_at),
                pending_tests=["sterility"],
            ),
        )
        for producer in (hospital, gmp, qc):
            producer.close()


def wait_known(service: InfusionService, *patients: Patient) -> None:
    facts = service.app.facts

    def known() -> bool:
        return all(
            all(facts.product_unit(din[:13]) for din in one.dins)
            and facts.release_of(one.batch_id).status is ReleaseStatus.PROVISIONAL
            and facts.treating_site_of(one.coi) == one.treating_site
            for one in patients
        )

    eventually(known, f"the patients' units, release and enrolment at {service.settings.site_id}")


def stub(pki: Path, service: InfusionService, site: str) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.InfusionServiceStub(channel), channel


def refused(call: Any, request: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10)
    return raised.value.code(), raised.value.details()


def signed(nurse: Operator, meaning: str = "verification") -> ESignatureRequest:
    """`nurse` re-authenticating with their own password."""
    password = password_of(nurse.user_id)
    return ESignatureRequest(user_id=nurse.user_id, password=password, meaning=meaning)


def bedside(nurse: Operator, coi: str, din: str) -> pb.ScanAtBedsideRequest:
    return pb.ScanAtBedsideRequest(
        operator=nurse, wristband_coi=coi, din=din, signature=signed(nurse)
    )


def scan(ward: Any, nurse: Operator, coi: str, din: str) -> Any:
    return ward.ScanAtBedside(bedside(nurse, coi, din), timeout=10)


def administration(first: Operator, second: Operator, din: str) -> pb.AdministerInfusionRequest:
    return pb.AdministerInfusionRequest(
        operator=first,
        din=din,
        dose_car_cells_per_kg=1.0e6,
        volume_ml=60.0,
        witnessed_by=second,
        witness_signature=signed(second, "witness"),
    )


def infuse(ward: Any, first: Operator, second: Operator, coi: str, din: str) -> Any:
    ward.ReceiveProduct(pb.ReceiveProductRequest(operator=first, din=din), timeout=10)
    assert scan(ward, first, coi, din).outcome == "first-scan-recorded"
    assert scan(ward, second, coi, din).outcome == "verified"
    return ward.AdministerInfusion(administration(first, second, din), timeout=10).unit


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def cois_recorded(service: InfusionService) -> set[str]:
    """The COIs of every event the service recorded (its outbox)."""
    app = service.app
    notifications = app.recorder.select_notifications(1, 100_000)
    return {getattr(app.mapper.to_domain_event(n), "coi", "") for n in notifications}


def test_no_site_reads_another_sites_patients_units_or_alerts(
    pki: Path, ward_a: InfusionService, ward_b: InfusionService, kafka_bootstrap: str
) -> None:
    mine, theirs = patient(HOSP_A), patient(HOSP_B)
    publish_upstream(pki, kafka_bootstrap, mine, theirs)
    wait_known(ward_a, mine, theirs)
    wait_known(ward_b, mine, theirs)
    [din], [their_din] = mine.dins, theirs.dins
    a_at_a, a_channel = stub(pki, ward_a, HOSP_A)
    b_at_a, b_channel = stub(pki, ward_a, HOSP_B)
    b_at_b, own_channel = stub(pki, ward_b, HOSP_B)
    audit_at_a, audit_channel = stub(pki, ward_a, AUDITOR)
    with a_channel, b_channel, own_channel, audit_channel:
        a_at_a.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=10)
        failure_id = str(uuid4())
        qc = stand_in(pki, kafka_bootstrap, QC, "release", "qc", "BatchRelease")
        qc.publish(
            mine.coi,
            release.PostReleaseFailureRecorded(
                coi=mine.coi,
                batch_id=mine.batch_id,
                failure_id=failure_id,
                spec_version="v1",
                product_dins=[din],
                test="sterility",
                value="positive",
                criterion="negative",
                result_at=timestamp(datetime.now(UTC)),
                released_as="provisional",
            ),
        )
        qc.close()

        def alerted() -> Any:
            alerts = a_at_a.ListAlerts(pb.ListAlertsRequest(), timeout=10).alerts
            return [a for a in alerts if a.failure_id == failure_id]

        eventually(alerted, "the failure alert at HOSP-A")
        assert a_at_a.GetProductUnit(pb.GetProductUnitRequest(din=din)).unit.status == "received"

        # HOSP-B at HOSP-A's service: nothing of HOSP-A's ward
        unit = pb.GetProductUnitRequest(din=din)
        assert refused(b_at_a.GetProductUnit, unit)[0] == grpc.StatusCode.NOT_FOUND
        assert list(b_at_a.ListAlerts(pb.ListAlertsRequest(), timeout=10).alerts) == []
        # no ward reads another site's patient's unit, even at its own service
        assert refused(b_at_b.GetProductUnit, unit)[0] == grpc.StatusCode.NOT_FOUND
        theirs_at_a = pb.GetProductUnitRequest(din=their_din)
        assert refused(a_at_a.GetProductUnit, theirs_at_a)[0] == grpc.StatusCode.NOT_FOUND
        assert b_at_b.GetProductUnit(pb.GetProductUnitRequest(din=their_din)).unit.coi == (
            theirs.coi
        )
        # an auditor reads all
        assert audit_at_a.GetProductUnit(unit, timeout=10).unit.coi == mine.coi
        assert audit_at_a.GetProductUnit(theirs_at_a, timeout=10).unit.coi == theirs.coi
        audited = audit_at_a.ListAlerts(pb.ListAlertsRequest(), timeout=10).alerts
        assert failure_id in {a.failure_id for a in audited}

    client = TestClient(ward_a.http_app, raise_server_exceptions=False)
    ward, other, auditor = auth(pki, HOSP_A), auth(pki, HOSP_B), auth(pki, AUDITOR)
    assert client.get(f"/v1/units/{din}", headers=ward).json()["status"] == "received"
    for foreign, headers in ((din, other), (their_din, ward)):
        answer = client.get(f"/v1/units/{foreign}", headers=headers)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/alerts", headers=other).json() == {"alerts": []}
    assert failure_id in {
        a["failure_id"] for a in client.get("/v1/alerts", headers=ward).json()["alerts"]
    }
    assert client.get(f"/v1/units/{their_din}", headers=auditor).json()["coi"] == theirs.coi


def test_a_bag_infused_at_its_treating_site_is_refused_at_another_ward(
    pki: Path, ward_a: InfusionService, ward_b: InfusionService, kafka_bootstrap: str
) -> None:
    theirs = patient(HOSP_A)
    publish_upstream(pki, kafka_bootstrap, theirs)
    wait_known(ward_a, theirs)
    wait_known(ward_b, theirs)
    [din] = theirs.dins
    a_ward, a_channel = stub(pki, ward_a, HOSP_A)
    b_ward, b_channel = stub(pki, ward_b, HOSP_B)
    with a_channel, b_channel:
        assert infuse(a_ward, NORA, NED, theirs.coi, din).status == "infused"

        receipt = pb.ReceiveProductRequest(operator=BERT, din=din)
        code, details = refused(b_ward.ReceiveProduct, receipt)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "not-treating-site" in details
        for nurse in (BERT, BEA):
            code, details = refused(b_ward.ScanAtBedside, bedside(nurse, theirs.coi, din))
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "not-received" in details
        code, _ = refused(b_ward.AdministerInfusion, administration(BERT, BEA, din))
        assert code == grpc.StatusCode.NOT_FOUND  # never received at HOSP-B
    client = TestClient(ward_b.http_app, raise_server_exceptions=False)
    answer = client.post(
        f"/v1/units/{din}/receipt",
        json={"operator": {"user_id": BERT.user_id, "printed_name": BERT.printed_name}},
        headers=auth(pki, HOSP_B),
    )
    assert answer.status_code == 409 and answer.json()["reason_code"] == "not-treating-site"
    assert theirs.coi not in cois_recorded(ward_b)  # no record relates HOSP-B to that chain


def test_a_unit_infused_at_any_other_site_is_refused_at_every_step(
    pki: Path, ward_b: InfusionService, kafka_bootstrap: str
) -> None:
    mine = patient(HOSP_B, units=2)
    publish_upstream(pki, kafka_bootstrap, mine)
    wait_known(ward_b, mine)
    verified_here, not_yet_here = mine.dins
    ward, channel = stub(pki, ward_b, HOSP_B)
    with channel:
        ward.ReceiveProduct(pb.ReceiveProductRequest(operator=BERT, din=verified_here))
        assert scan(ward, BERT, mine.coi, verified_here).outcome == "first-scan-recorded"
        assert scan(ward, BEA, mine.coi, verified_here).outcome == "verified"

        elsewhere = stand_in(pki, kafka_bootstrap, HOSP_C, "infusion", "infusion", "ProductAtSite")
        for din in (not_yet_here, verified_here):
            elsewhere.publish(
                mine.coi,
                infusion.InfusionAdministered(
                    coi=mine.coi,
                    din=din,
                    administered_at=timestamp(datetime.now(UTC) - timedelta(minutes=5)),
                    dose_car_cells_per_kg=1.0e6,
                    volume_ml=60.0,
                    administered_by=Operator(user_id="c-1", printed_name="Cy Nurse"),
                    witnessed_by=Operator(user_id="c-2", printed_name="Cleo Nurse"),
                    release_basis="provisional",
                ),
            )
        elsewhere.close()

        def refused_at_bedside() -> str:
            """A further good scan changes nothing; once the infusion is known it is refused."""
            try:
                scan(ward, THIRD, mine.coi, verified_here)
            except grpc.RpcError as error:
                return str(error.details())
            return ""

        details = eventually(refused_at_bedside, "HOSP-C's infusion to be known at HOSP-B", 30)
        assert "already-infused" in details and HOSP_C in details
        code, details = refused(ward.AdministerInfusion, administration(BERT, BEA, verified_here))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "already-infused" in details
        unit = ward.GetProductUnit(pb.GetProductUnitRequest(din=verified_here), timeout=10).unit
        assert unit.status == "verified" and not unit.HasField("administered_at")
        code, details = refused(
            ward.ReceiveProduct, pb.ReceiveProductRequest(operator=BERT, din=not_yet_here)
        )
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "already-infused" in details
