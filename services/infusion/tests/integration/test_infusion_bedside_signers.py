"""Proven persons at the bedside (issue 13 item 2), on PostgreSQL + Kafka through the real mTLS
gRPC server: the ward's nurses are registered with `v2v signer add` in infusion's own signer
store (its PostgreSQL database), each with their own password. One nurse cannot make both
bedside scans with her one password, a wrong password is refused and counted in the store, a
witness who does not re-authenticate is refused; the events published on Kafka carry both
scanners' and the witness's manifestations, bound to what each signed.

Manufacturing, release and intake are not under test: their signed envelopes are produced
onto their topics directly.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.infusion.events.v1 import events_pb2 as events
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
from v2v_platform.esign import open_signer_store
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.kafka_topics import read_verified_until
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.infusion import running_ward

pytestmark = pytest.mark.integration
HOSPITAL, GMP, QC = "HOSP-A", "GMP-B", "QC-1"
NORA = Operator(user_id="n-1", printed_name="Nora Nurse")
NED = Operator(user_id="n-2", printed_name="Ned Nurse")
PASSWORDS = {"n-1": "nora's own pass phrase", "n-2": "ned's own pass phrase"}


def add_signer(dsn: str, who: Operator) -> None:
    """`v2v signer add` on infusion's database, as the site administrator registers nurses."""
    env = {**os.environ, "V2V_SIGNER_PASSWORD": PASSWORDS[who.user_id]}
    command = [sys.executable, "-m", "v2v_platform.cli", "signer", "add", "--site", HOSPITAL]
    command += ["--user", who.user_id, "--name", who.printed_name, "--role", "nurse"]
    subprocess.run([*command, "--postgres-dsn", dsn], env=env, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{HOSPITAL}:collection,infusion", f"{GMP}:manufacturing", f"{QC}:qc"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[InfusionService]:
    for nurse in (NORA, NED):
        add_signer(postgres_database.dsn, nurse)
    with running_ward(pki, postgres_database.dsn, kafka_bootstrap, HOSPITAL) as running:
        yield running


def publish_upstream(pki: Path, kafka: str, coi: str, din: str) -> str:
    """Manufacturing's unit, release's provisional certification, intake's enrolment here;
    returns the batch id."""
    released_at = datetime.now(UTC) - timedelta(hours=3)
    batch_id = str(uuid4())

    def producer(site: str, context: str, role: str, kind: str) -> Any:
        signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
        actor = Actor(f"u-{role}", f"{role.title()} User", role)
        return SignedEnvelopeProducer(kafka, f"v2v.{context}.events.v1", signer, actor, kind)

    upstream = [
        (
            producer(GMP, "manufacturing", "manufacturing", "Batch"),
            manufacturing.ProductUnitsCreated(
                coi=coi,
                batch_id=batch_id,
                product_dins=[din],
                hold_condition=Condition.CONDITION_FRESH_COLD,
                created_at=timestamp(released_at - timedelta(hours=1)),
            ),
        ),
        (
            producer(QC, "release", "qc", "BatchRelease"),
            release.ProvisionallyCertified(
                coi=coi,
                batch_id=batch_id,
                spec_version="v1",
                product_dins=[din],
                certified_at=timestamp(released_at),
                pending_tests=["sterility"],
            ),
        ),
        (
            producer(HOSPITAL, "intake", "collection", "Therapy"),
            intake.PatientEnrolled(
                coi=coi,
                patient_pseudonym="p-signers",
                enrolling_site_id=HOSPITAL,
                treating_site_id=HOSPITAL,
            ),
        ),
    ]
    for each, message in upstream:
        each.publish(coi, message)
        each.close()
    return batch_id


def signed(user_id: str, password: str, meaning: str = "verification") -> ESignatureRequest:
    return ESignatureRequest(user_id=user_id, password=password, meaning=meaning)


def refused(call: Any, request: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=10)
    return error.value.code(), error.value.details()


def test_two_proven_nurses_verify_a_proven_witness_attends_and_one_nurse_cannot_be_both(
    pki: Path, service: InfusionService, kafka_bootstrap: str, postgres_database: PostgresDatabase
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    din = str(issue_din("W1234", 25, random.randint(1, 999_999)))
    batch_id = publish_upstream(pki, kafka_bootstrap, coi, din)
    facts = service.app.facts
    eventually(lambda: facts.product_unit(din[:13]), "manufacturing's product unit")
    eventually(
        lambda: facts.release_of(batch_id).status is ReleaseStatus.PROVISIONAL,
        "release's provisional certification",
    )
    eventually(lambda: facts.treating_site_of(coi) == HOSPITAL, "intake's enrolment")

    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, HOSPITAL))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    ward = pb_grpc.InfusionServiceStub(channel)
    with channel:
        ward.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=10)

        def scan(operator: Operator, signature: ESignatureRequest) -> pb.ScanAtBedsideRequest:
            return pb.ScanAtBedsideRequest(
                operator=operator, wristband_coi=coi, din=din, signature=signature
            )

        first = ward.ScanAtBedside(scan(NORA, signed("n-1", PASSWORDS["n-1"])), timeout=10)
        assert first.outcome == "first-scan-recorded"
        # Nora, alone at the bedside, tries to be the second nurse too
        code, details = refused(ward.ScanAtBedside, scan(NED, signed("n-2", PASSWORDS["n-1"])))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "'n-2' failed" in details
        code, details = refused(ward.ScanAtBedside, scan(NED, signed("n-1", PASSWORDS["n-1"])))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "operator.user_id 'n-2'" in details
        code, details = refused(ward.ScanAtBedside, scan(NORA, signed("n-1", PASSWORDS["n-1"])))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "same-user" in details
        signers = open_signer_store(postgres_database.dsn, None)
        ned = signers.get(HOSPITAL, "n-2")
        assert ned is not None and ned.failures == 1  # counted towards Ned's lock-out
        unit = ward.GetProductUnit(pb.GetProductUnitRequest(din=din), timeout=10).unit
        assert unit.status == "first-scan-recorded"

        second = ward.ScanAtBedside(scan(NED, signed("n-2", PASSWORDS["n-2"])), timeout=10)
        assert second.outcome == "verified"

        infusion = pb.AdministerInfusionRequest(
            operator=NORA, din=din, dose_car_cells_per_kg=1.0e6, volume_ml=62.0, witnessed_by=NED
        )
        code, details = refused(ward.AdministerInfusion, infusion)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "witness_signature is required" in (
            details
        )
        infusion.witness_signature.CopyFrom(signed("n-2", PASSWORDS["n-1"], "witness"))
        assert refused(ward.AdministerInfusion, infusion)[0] == grpc.StatusCode.UNAUTHENTICATED
        unit = ward.GetProductUnit(pb.GetProductUnitRequest(din=din), timeout=10).unit
        assert unit.status == "verified"
        infusion.witness_signature.CopyFrom(signed("n-2", PASSWORDS["n-2"], "witness"))
        assert ward.AdministerInfusion(infusion, timeout=10).unit.status == "infused"

    ring = KeyRing.load(pki / "signing-keys.json")
    records, breaks = read_verified_until(
        kafka_bootstrap,
        "v2v.infusion.events.v1",
        ring,
        keep=lambda envelope: envelope.coi == coi,
        done=lambda mine: any(e.event_type.endswith("InfusionAdministered") for e in mine),
    )
    assert not breaks
    by_type = {e.event_type.rsplit(".", 1)[1]: e for _, e in records}
    scanned = events.BedsideScanRecorded.FromString(by_type["BedsideScanRecorded"].payload)
    verified = events.BedsideVerified.FromString(by_type["BedsideVerified"].payload)
    infused = events.InfusionAdministered.FromString(by_type["InfusionAdministered"].payload)
    assert scanned.signature.user_id == "n-1" and scanned.signature.meaning == "verification"
    assert verified.first_signature == scanned.signature
    assert (verified.second_signature.user_id, verified.second_signature.printed_name) == (
        "n-2",
        "Ned Nurse",
    )
    assert verified.second_user.printed_name == "Ned Nurse"
    witness = infused.witness_signature
    assert (witness.user_id, witness.meaning) == ("n-2", "witness")
    assert (infused.witnessed_by.user_id, infused.administered_by.user_id) == ("n-2", "n-1")
    assert len({scanned.signature.record_hash, witness.record_hash}) == 2
    assert all(len(s.record_hash) == 64 for s in (scanned.signature, witness))
