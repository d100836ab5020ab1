"""Infusion on PostgreSQL + Kafka with data entered after the fact (issue 14): release's
provisional certification, made 80 hours ago, is learned from its topic; the ward enters its
steps now. A ward receipt dated 50 minutes before the release is refused (gRPC
INVALID_ARGUMENT, HTTP 422, naming `received_at`) and nothing is recorded; the receipt, the
two bedside scans and the infusion dated when they happened (the infusion 71 hours after the
release, within the 72-hour fresh window, although it is entered 80 hours after) are judged
by those times and published with them (payload and envelope `occurred_at`), apart from when
they were recorded.

Before issue 14 the receipt before the release was accepted (and the projection raised
custody alerts), and the bedside scans were judged at the time of entry: window-expired."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.bootstrap import InfusionService
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.esign import open_signer_store
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import from_timestamp, timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.kafka_topics import read_verified_until
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.infusion import (
    nurse_signer,
    password_of,
    refused_receipt_over_both_apis,
    running_ward,
    ward_stub,
)

pytestmark = pytest.mark.integration
HOSPITAL, GMP, QC = "HOSP-A", "GMP-B", "QC-1"
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")
NED = Operator(user_id="u-nurse-2", printed_name="Ned Nurse")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{HOSPITAL}:collection,infusion", f"{GMP}:manufacturing", f"{QC}:qc"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[InfusionService]:
    signers = open_signer_store(postgres_database.dsn, None)
    for nurse in (NORA, NED):
        signers.put(nurse_signer(nurse.user_id, nurse.printed_name, HOSPITAL))
    with running_ward(pki, postgres_database.dsn, kafka_bootstrap, HOSPITAL) as running:
        yield running


def stand_in(pki: Path, kafka: str, site: str, context: str, role: str, kind: str) -> Any:
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    actor = Actor(f"u-{role}", f"{role.title()} User", role)
    return SignedEnvelopeProducer(kafka, f"v2v.{context}.events.v1", signer, actor, kind)


def publish_upstream(pki: Path, kafka: str, coi: str, din: str, released_at: datetime) -> str:
    """Manufacturing's product unit, release's provisional certification (at `released_at`)
    and intake's enrolment for this site; the batch id."""
    batch_id = str(uuid4())
    gmp = stand_in(pki, kafka, GMP, "manufacturing", "manufacturing", "Batch")
    gmp.publish(
        coi,
        manufacturing.ProductUnitsCreated(
            coi=coi,
            batch_id=batch_id,
            product_dins=[din],
            hold_condition=Condition.CONDITION_FRESH_COLD,
            created_at=timestamp(released_at - timedelta(hours=20)),
        ),
    )
    qc = stand_in(pki, kafka, QC, "release", "qc", "BatchRelease")
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
    clinic = stand_in(pki, kafka, HOSPITAL, "intake", "collection", "Therapy")
    clinic.publish(
        coi,
        intake.PatientEnrolled(
            coi=coi, patient_pseudonym="p-ct", enrolling_site_id=HOSPITAL, treating_site_id=HOSPITAL
        ),
    )
    for producer in (gmp, qc, clinic):
        producer.close()
    return batch_id


def signed(nurse: Operator, meaning: str = "verification") -> ESignatureRequest:
    password = password_of(nurse.user_id)
    return ESignatureRequest(user_id=nurse.user_id, password=password, meaning=meaning)


def test_steps_entered_after_the_fact_are_judged_and_published_at_their_clinical_times(
    pki: Path, service: InfusionService, kafka_bootstrap: str
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    din = str(issue_din("W1234", 25, random.randint(1, 999_999)))
    now = datetime.now(UTC)
    released_at = now - timedelta(hours=80)
    batch_id = publish_upstream(pki, kafka_bootstrap, coi, din, released_at)
    facts = service.app.facts
    eventually(lambda: facts.product_unit(din[:13]), "manufacturing's product unit")
    eventually(lambda: facts.release_of(batch_id).released_at, "release's certification")
    eventually(lambda: facts.treating_site_of(coi) == HOSPITAL, "intake's enrolment")
    assert facts.release_of(batch_id).released_at == released_at

    early = released_at - timedelta(minutes=50)
    http_detail, grpc_details = refused_receipt_over_both_apis(
        service, pki, HOSPITAL, NORA, din, early
    )
    assert http_detail.startswith("received_at ")
    assert "before the product's release" in http_detail
    assert grpc_details.startswith("received_at ")

    with ward_stub(service, pki, HOSPITAL) as ward:
        receipt = pb.ReceiveProductRequest(operator=NORA, din=din)
        received_at = released_at + timedelta(hours=2)
        receipt.received_at.CopyFrom(timestamp(received_at))
        assert ward.ReceiveProduct(receipt, timeout=10).unit.status == "received"
        scanned_at = released_at + timedelta(hours=70, minutes=45)
        for nurse in (NORA, NED):
            scan = pb.ScanAtBedsideRequest(
                operator=nurse,
                wristband_coi=coi,
                din=din,
                scanned_at=timestamp(scanned_at),
                signature=signed(nurse),
            )
            outcome = ward.ScanAtBedside(scan, timeout=10).outcome
        assert outcome == "verified"
        administered_at = released_at + timedelta(hours=71)
        infused = ward.AdministerInfusion(
            pb.AdministerInfusionRequest(
                operator=NORA,
                din=din,
                administered_at=timestamp(administered_at),
                dose_car_cells_per_kg=1.0e6,
                volume_ml=62.0,
                witnessed_by=NED,
                witness_signature=signed(NED, "witness"),
            ),
            timeout=10,
        ).unit
        assert infused.status == "infused"
        assert from_timestamp(infused.administered_at) == administered_at

    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    records, breaks = read_verified_until(
        kafka_bootstrap,
        "v2v.infusion.events.v1",
        ring,
        keep=lambda envelope: envelope.coi == coi,
        done=lambda mine: any(e.event_type.endswith("InfusionAdministered") for e in mine),
    )
    assert not breaks
    envelopes = {e.event_type.rsplit(".", 1)[1]: e for _, e in records}
    assert list(envelopes) == [
        "ProductReceived",
        "BedsideScanRecorded",
        "BedsideVerified",
        "InfusionAdministered",
    ]
    expected = {
        "ProductReceived": received_at,
        "BedsideScanRecorded": scanned_at,
        "BedsideVerified": scanned_at,
        "InfusionAdministered": administered_at,
    }
    for name, envelope in envelopes.items():
        assert from_timestamp(envelope.occurred_at) == expected[name], name
        assert from_timestamp(envelope.recorded_at) >= now, name  # recorded now, apart
    payload = infusion.InfusionAdministered.FromString(envelopes["InfusionAdministered"].payload)
    assert from_timestamp(payload.administered_at) == administered_at
