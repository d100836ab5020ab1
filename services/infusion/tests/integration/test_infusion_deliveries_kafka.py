"""Infusion on PostgreSQL + Kafka learns deliveries from logistics' topic (issue 14, item 2):
the product is made, released and enrolled for this ward's site; logistics (the courier
company's site, the author of its events) publishes that its shipment was delivered here at
a clinical time. A ward receipt dated 10 minutes before that delivery is refused (gRPC
INVALID_ARGUMENT, HTTP 422, naming `received_at`) and nothing is recorded; one dated 10
minutes after it is accepted.

Before this, infusion did not read logistics' topic and accepted a ward receipt before the
unit had arrived at the site."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.bootstrap import InfusionService
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.infusion import refused_receipt_over_both_apis, running_ward, ward_stub

pytestmark = pytest.mark.integration
HOSPITAL, GMP, QC, LOGISTICS = "HOSP-A", "GMP-B", "QC-1", "LOGI-1"
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [
        f"{HOSPITAL}:collection,infusion",
        f"{GMP}:manufacturing",
        f"{QC}:qc",
        f"{LOGISTICS}:courier",
    ]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[InfusionService]:
    with running_ward(pki, postgres_database.dsn, kafka_bootstrap, HOSPITAL) as running:
        yield running


def stand_in(pki: Path, kafka: str, site: str, context: str, role: str, kind: str) -> Any:
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    actor = Actor(f"u-{role}", f"{role.title()} User", role)
    return SignedEnvelopeProducer(kafka, f"v2v.{context}.events.v1", signer, actor, kind)


def publish_upstream(pki: Path, kafka: str, coi: str, din: str, released_at: datetime) -> str:
    """Manufacturing's product unit, release's provisional certification and intake's
    enrolment for this site; the batch id."""
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
        ),
    )
    clinic = stand_in(pki, kafka, HOSPITAL, "intake", "collection", "Therapy")
    clinic.publish(
        coi,
        intake.PatientEnrolled(
            coi=coi, patient_pseudonym="p-dl", enrolling_site_id=HOSPITAL, treating_site_id=HOSPITAL
        ),
    )
    for producer in (gmp, qc, clinic):
        producer.close()
    return batch_id


def publish_delivery(pki: Path, kafka: str, coi: str, din: str, received_at: datetime) -> None:
    """Logistics: the shipment holding `din` was delivered to this hospital's ward."""
    courier = stand_in(pki, kafka, LOGISTICS, "logistics", "infusion", "Shipment")
    courier.publish(
        coi,
        logistics.ShipmentDelivered(
            coi=coi,
            shipment_id=str(uuid4()),
            from_party="courier:C-17",
            destination_site_id=HOSPITAL,
            received_at=timestamp(received_at),
            destination_department="ward",
            manifest_dins=[din],
        ),
    )
    courier.close()


def test_a_ward_receipt_before_the_delivery_learned_from_logistics_is_refused(
    pki: Path, service: InfusionService, kafka_bootstrap: str
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    din = str(issue_din("W1234", 25, random.randint(1, 999_999)))
    now = datetime.now(UTC)
    released_at = now - timedelta(hours=30)
    delivered_at = now - timedelta(hours=5)
    batch_id = publish_upstream(pki, kafka_bootstrap, coi, din, released_at)
    publish_delivery(pki, kafka_bootstrap, coi, din, delivered_at)
    facts = service.app.facts
    eventually(lambda: facts.release_of(batch_id).released_at, "release's certification")
    eventually(lambda: facts.treating_site_of(coi) == HOSPITAL, "intake's enrolment")
    eventually(lambda: facts.delivered_at(din[:13], HOSPITAL), "logistics' delivery")
    assert facts.delivered_at(din[:13], HOSPITAL) == delivered_at

    early = delivered_at - timedelta(minutes=10)
    http_detail, grpc_details = refused_receipt_over_both_apis(
        service, pki, HOSPITAL, NORA, din, early
    )
    assert http_detail.startswith("received_at ")
    assert "before its delivery to this site" in http_detail
    assert grpc_details.startswith("received_at ")
    assert "before its delivery to this site" in grpc_details

    with ward_stub(service, pki, HOSPITAL) as ward:
        receipt = pb.ReceiveProductRequest(operator=NORA, din=din)
        receipt.received_at.CopyFrom(timestamp(delivered_at + timedelta(minutes=10)))
        assert ward.ReceiveProduct(receipt, timeout=10).unit.status == "received"
