"""A DIN bound to two patients is refused downstream (issue 14, I1), on PostgreSQL + Kafka.

The issue's in-house site labelled S12342600000200 as patient 1's apheresis bag, then harvested
a product of patient 2 with the same DIN, which was infused into patient 2. Here intake's label
and manufacturing's products reach the treating site's infusion service as signed envelopes
on their topics: the product whose DIN is also patient 1's bag is refused at receipt with
reason code `identity-conflict`; a product received before the conflict became known is
refused at the bedside, the refusal recorded on its chain and published. The other products
of the batch, bound to one patient, go on.

Intake and manufacturing are not under test: their signed envelopes are produced directly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as pb_grpc
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.bootstrap import InfusionService
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
from v2v_testkit.infusion import nurse_signer, password_of, running_ward

pytestmark = pytest.mark.integration
HOSPITAL, GMP, QC = "SHEBA", "SHEBA", "QC-1"  # an in-house site: collection, GMP and ward
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{HOSPITAL}:collection,manufacturing,infusion", f"{QC}:qc"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[InfusionService]:
    signers = open_signer_store(postgres_database.dsn, None)
    signers.put(nurse_signer(NORA.user_id, NORA.printed_name, HOSPITAL))
    with running_ward(pki, postgres_database.dsn, kafka_bootstrap, HOSPITAL) as running:
        yield running


def stand_in(pki: Path, kafka: str, site: str, context: str, role: str, kind: str) -> Any:
    """Another context's relay, as far as infusion can tell."""
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    actor = Actor(f"u-{role}", f"{role.title()} User", role)
    return SignedEnvelopeProducer(kafka, f"v2v.{context}.events.v1", signer, actor, kind)


def refusal(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), refused.value.details()


def test_a_din_bound_to_two_patients_is_refused_at_receipt_and_at_the_bedside(
    pki: Path, service: InfusionService, kafka_bootstrap: str
) -> None:
    fin = f"S{random.randrange(10_000):04d}"
    first_patient = issue_coi(fin, 26, random.randint(1, 499_999)).value
    second_patient = issue_coi(fin, 26, random.randint(500_000, 999_999)).value
    bag, early, other = (str(issue_din(fin, 26, n)) for n in (200, 300, 400))
    batch_id = str(uuid4())
    made_at = datetime.now(UTC) - timedelta(hours=3)
    hospital = stand_in(pki, kafka_bootstrap, HOSPITAL, "intake", "collection", "Therapy")
    gmp = stand_in(pki, kafka_bootstrap, GMP, "manufacturing", "manufacturing", "Batch")
    qc = stand_in(pki, kafka_bootstrap, QC, "release", "qc", "BatchRelease")
    hospital.publish(
        first_patient,
        intake.UnitLabelled(
            coi=first_patient, collection_id="c-1", din=bag, unit_kind="apheresis-bag"
        ),
    )
    hospital.publish(
        second_patient,
        intake.PatientEnrolled(
            coi=second_patient,
            patient_pseudonym="p-2",
            enrolling_site_id=HOSPITAL,
            treating_site_id=HOSPITAL,
        ),
    )
    gmp.publish(
        second_patient,
        manufacturing.ProductUnitsCreated(
            coi=second_patient,
            batch_id=batch_id,
            product_dins=[bag, early, other],
            hold_condition=Condition.CONDITION_FRESH_COLD,
            created_at=timestamp(made_at),
        ),
    )
    qc.publish(
        second_patient,
        release.FinallyCertified(
            coi=second_patient,
            batch_id=batch_id,
            spec_version="v1",
            product_dins=[bag, early, other],
            certified_at=timestamp(made_at + timedelta(hours=1)),
        ),
    )
    facts = service.app.facts
    eventually(lambda: facts.treating_site_of(second_patient) == HOSPITAL, "the enrolment")
    eventually(
        lambda: (unit := facts.product_unit(bag[:13])) and unit.other_cois == (first_patient,),
        "the bag's label and the product, bound to two patients",
    )

    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, HOSPITAL))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        ward = pb_grpc.InfusionServiceStub(channel)

        def receive(din: str) -> Any:
            return ward.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=10)

        code, details = refusal(lambda: receive(bag))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "identity-conflict" in details and first_patient in details
        assert receive(early).unit.coi == second_patient  # received before any conflict

        # the early product's DIN turns out to be patient 1's too: the bedside stops
        hospital.publish(
            first_patient,
            intake.UnitLabelled(
                coi=first_patient, collection_id="c-1", din=early, unit_kind="apheresis-bag"
            ),
        )
        eventually(
            lambda: (unit := facts.product_unit(early[:13])) and unit.other_cois,
            "the second binding of the early product's DIN",
        )
        scan = pb.ScanAtBedsideRequest(
            operator=NORA,
            wristband_coi=second_patient,
            din=early,
            signature=ESignatureRequest(
                user_id=NORA.user_id, password=password_of(NORA.user_id), meaning="verification"
            ),
        )
        code, details = refusal(lambda: ward.ScanAtBedside(scan, timeout=10))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "identity-conflict" in details
        assert receive(other).unit.coi == second_patient  # bound to one patient: goes on
    for producer in (hospital, gmp, qc):
        producer.close()

    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    records, breaks = read_verified_until(
        kafka_bootstrap,
        "v2v.infusion.events.v1",
        ring,
        keep=lambda envelope: envelope.coi == second_patient,
        done=lambda mine: any(e.event_type.endswith("BedsideMismatchRecorded") for e in mine),
    )
    assert not breaks
    [mismatch] = [
        infusion.BedsideMismatchRecorded.FromString(envelope.payload)
        for _, envelope in records
        if envelope.event_type.endswith("BedsideMismatchRecorded")
    ]
    assert (mismatch.reason_code, mismatch.scanned_din) == ("identity-conflict", early)
