"""Infusion on PostgreSQL + Kafka: a fresh product unit learned from manufacturing's events,
provisionally certified by release and enrolled for this treating site by intake, is
received, verified at the bedside by two users and infused over gRPC (mTLS). Then sterility
fails: the post-release failure is visible as an alert at the site well within 2 seconds
(the measured delay is printed); the physician acknowledges it with an e-signature; the
infusion events are read back from Kafka as verifiable signed chains keyed by the COI.

Manufacturing, release and intake are not under test: their signed envelopes are produced
onto their topics directly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as pb_grpc
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.bootstrap import InfusionService
from v2v_infusion.domain.values import ReleaseStatus
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.esign import Signer, hash_password, open_signer_store
from v2v_platform.ids import Coi, issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.kafka_topics import read_verified_until
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.infusion import nurse_signer, password_of, running_ward

HOSPITAL, GMP, QC = "HOSP-A", "GMP-B", "QC-1"
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")
NED = Operator(user_id="u-nurse-2", printed_name="Ned Nurse")
DOCTOR = Operator(user_id="u-doc", printed_name="Dr. Petra Physician")
PASSWORD = "correct horse battery"
ALERT_DEADLINE_S = 2.0


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{HOSPITAL}:collection,infusion", f"{GMP}:manufacturing", f"{QC}:qc"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[InfusionService]:
    signers = open_signer_store(postgres_database.dsn, None)  # `v2v signer add` does this
    roles = frozenset({"physician"})
    signers.put(
        Signer(HOSPITAL, DOCTOR.user_id, DOCTOR.printed_name, roles, hash_password(PASSWORD))
    )
    for nurse in (NORA, NED):  # each with their own password
        signers.put(nurse_signer(nurse.user_id, nurse.printed_name, HOSPITAL))
    with running_ward(pki, postgres_database.dsn, kafka_bootstrap, HOSPITAL) as running:
        yield running


def signed(nurse: Operator, meaning: str = "verification") -> ESignatureRequest:
    """`nurse` re-authenticating with their own password."""
    password = password_of(nurse.user_id)
    return ESignatureRequest(user_id=nurse.user_id, password=password, meaning=meaning)


def stand_in(pki: Path, kafka: str, site: str, context: str, role: str, kind: str) -> Any:
    """Another context's relay, as far as infusion can tell."""
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    actor = Actor(f"u-{role}", f"{role.title()} User", role)
    return SignedEnvelopeProducer(kafka, f"v2v.{context}.events.v1", signer, actor, kind)


def stub(pki: Path, service: InfusionService) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, HOSPITAL))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.InfusionServiceStub(channel), channel


def published(kafka: str, pki: Path, coi: str) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """This run's infusion (record, envelope) pairs, read until the acknowledgement."""
    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    return read_verified_until(
        kafka,
        "v2v.infusion.events.v1",
        ring,
        keep=lambda envelope: envelope.coi == coi,
        done=lambda mine: any(e.event_type.endswith("FailureAcknowledged") for e in mine),
    )


@pytest.mark.integration
def test_a_provisionally_released_unit_is_infused_then_its_failure_alerts_at_once(
    pki: Path, service: InfusionService, kafka_bootstrap: str
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    din = str(issue_din("W1234", 25, random.randint(1, 999_999)))
    batch_id = str(uuid4())
    released_at = datetime.now(UTC) - timedelta(hours=3)
    gmp = stand_in(pki, kafka_bootstrap, GMP, "manufacturing", "manufacturing", "Batch")
    qc = stand_in(pki, kafka_bootstrap, QC, "release", "qc", "BatchRelease")
    hospital = stand_in(pki, kafka_bootstrap, HOSPITAL, "intake", "collection", "Therapy")
    # release first: the projection does not depend on the order of the topics
    qc.publish(
        coi,
        release.ProvisionallyCertified(
            coi=coi,
            batch_id=batch_id,
            spec_version="v1",
            product_dins=[din],
            certified_at=timestamp(released_at),
            pending_tests=["sterility", "vcn", "rcl"],
        ),
    )
    gmp.publish(
        coi,
        manufacturing.ProductUnitsCreated(
            coi=coi,
            batch_id=batch_id,
            product_dins=[din],
            hold_condition=Condition.CONDITION_FRESH_COLD,
            created_at=timestamp(released_at - timedelta(hours=1)),
        ),
    )
    hospital.publish(
        coi,
        intake.PatientEnrolled(
            coi=coi,
            patient_pseudonym="p-it",
            enrolling_site_id=HOSPITAL,
            treating_site_id=HOSPITAL,
        ),
    )
    facts = service.app.facts
    eventually(lambda: facts.product_unit(din[:13]), "manufacturing's product unit")
    eventually(
        lambda: facts.release_of(batch_id).status is ReleaseStatus.PROVISIONAL,
        "release's provisional certification",
    )
    eventually(lambda: facts.treating_site_of(coi) == HOSPITAL, "intake's enrolment")

    ward, channel = stub(pki, service)
    with channel:
        unit = ward.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=10)
        assert (unit.unit.coi, unit.unit.release_status) == (coi, "provisional")
        for nurse in (NORA, NED):
            scan = pb.ScanAtBedsideRequest(
                operator=nurse, wristband_coi=coi, din=din, signature=signed(nurse)
            )
            outcome = ward.ScanAtBedside(scan, timeout=10).outcome
        assert outcome == "verified"
        infused = ward.AdministerInfusion(
            pb.AdministerInfusionRequest(
                operator=NORA,
                din=din,
                dose_car_cells_per_kg=1.0e6,
                volume_ml=62.0,
                witnessed_by=NED,
                witness_signature=signed(NED, "witness"),
            ),
            timeout=10,
        ).unit
        assert infused.status == "infused"

        failure_id = str(uuid4())
        started = time.monotonic()
        qc.publish(
            coi,
            release.PostReleaseFailureRecorded(
                coi=coi,
                batch_id=batch_id,
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

        def alert_shown() -> Any:
            alerts = ward.ListAlerts(pb.ListAlertsRequest(unacknowledged_only=True), timeout=5)
            return [a for a in alerts.alerts if a.failure_id == failure_id]

        [alert] = eventually(alert_shown, "the post-release failure alert", ALERT_DEADLINE_S)
        delay = time.monotonic() - started
        print(f"post-release failure visible at {HOSPITAL} after {delay * 1000:.0f} ms")
        assert delay < ALERT_DEADLINE_S
        assert (alert.coi, alert.test, list(alert.product_dins)) == (coi, "sterility", [din])

        acknowledged = ward.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(
                operator=DOCTOR,
                failure_id=failure_id,
                decision="patient informed; blood cultures and antibiotics started",
                signature=ESignatureRequest(
                    user_id=DOCTOR.user_id, password=PASSWORD, meaning="responsibility"
                ),
            ),
            timeout=10,
        ).alert
        assert acknowledged.acknowledged
        assert acknowledged.physician_signature.printed_name == DOCTOR.printed_name
    for producer in (gmp, qc, hospital):
        producer.close()

    records, breaks = published(kafka_bootstrap, pki, coi)
    assert not breaks
    for record, envelope in records:
        assert Coi.parse(envelope.coi).value == envelope.coi == coi
        assert record.key == coi.encode() and envelope.site_id == HOSPITAL
    types = [envelope.event_type.rsplit(".", 1)[1] for _, envelope in records]
    assert types == [
        "ProductReceived",
        "BedsideScanRecorded",
        "BedsideVerified",
        "InfusionAdministered",
        "PostReleaseFailureAcknowledged",
    ]
    acknowledgement = records[-1][1]
    assert acknowledgement.actor.user_id == DOCTOR.user_id
    assert acknowledgement.signature_meaning == 4  # responsibility
    by_type = {envelope.event_type.rsplit(".", 1)[1]: envelope for _, envelope in records}
    verified = infusion.BedsideVerified.FromString(by_type["BedsideVerified"].payload)
    assert (verified.first_signature.user_id, verified.second_signature.user_id) == (
        NORA.user_id,
        NED.user_id,
    )
    assert by_type["BedsideVerified"].signature_meaning == 5  # verification
    administered = by_type["InfusionAdministered"]
    witness = infusion.InfusionAdministered.FromString(administered.payload).witness_signature
    assert (witness.user_id, witness.meaning) == (NED.user_id, "witness")
    assert administered.signature_meaning == 6  # witness
