"""Release on PostgreSQL + Kafka: manufacturing's and intake's facts projected from their
topics, QC results and a QP-signed provisional certification through gRPC (mTLS), a failing
sterility result through HTTP, and both decisions read back from v2v.release.events.v1 as a
verifiable signed chain keyed by the COI.

Manufacturing and intake are not under test: signed envelopes are produced onto their topics.
Each site acts only on its own patients (issue 13): a batch's release record is read by this
QC site, the COI's treating site (from intake's `PatientEnrolled`) and auditors only, and the
OOS acceptance comes from the treating site only; any other site gets NOT_FOUND (404).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient
from google.protobuf.message import DecodeError
from kafka import KafkaConsumer

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release_events
from v2v.release.v1 import release_service_pb2 as pb
from v2v.release.v1 import release_service_pb2_grpc as pb_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.esign import Signer, hash_password
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_release.bootstrap import ReleaseService, bootstrap
from v2v_release.domain.batch_release import release_id
from v2v_release.settings import ReleaseSettings
from v2v_testkit.release import PASSING, PRE_RELEASE

QC, GMP, HOSPITAL = "QC-1", "GMP-B", "HOSP-A"
OTHER_QC, OTHER_HOSPITAL = "QC-9", "HOSP-C"
PASSWORD = "qp signing password"
OPERATOR = Operator(user_id="u-analyst", printed_name="Ann Analyst")
ANALYST = Operator(user_id="u-lab", printed_name="Lee Lab")
RELEASE_TOPIC = "v2v.release.events.v1"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [
        f"{QC}:qc",
        f"{OTHER_QC}:qc",
        f"{GMP}:manufacturing",
        f"{HOSPITAL}:collection,infusion",
        f"{OTHER_HOSPITAL}:collection,infusion",
        "AUDIT-1:auditor",
    ]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[ReleaseService]:
    settings = ReleaseSettings(
        site_id=QC,
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
    )
    running = bootstrap(settings)
    qp = Signer(QC, "u-qp", "Dr. Quinn Person", frozenset({"qp"}), hash_password(PASSWORD))
    running.signers.put(qp)  # as `v2v signer add` does, in the service's own database
    doctor = Signer(
        HOSPITAL, "u-doc", "Dr. Tara Treat", frozenset({"physician"}), hash_password(PASSWORD)
    )
    running.signers.put(doctor)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    running.start_facts_consumer(group_id=f"release-it-{random.getrandbits(32):08x}")
    yield running
    running.stop()


def stand_in(pki: Path, kafka: str, site: str, context: str, role: str) -> SignedEnvelopeProducer:
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    return SignedEnvelopeProducer(
        kafka, f"v2v.{context}.events.v1", signer, Actor("u-1", "U", role)
    )


def publish_facts(pki: Path, kafka: str, coi: str, batch_id: str) -> None:
    started = datetime.now(UTC) - timedelta(days=9)
    mfg = stand_in(pki, kafka, GMP, "manufacturing", "manufacturing")
    mfg.publish(
        coi,
        manufacturing.BatchStarted(
            coi=coi,
            batch_id=batch_id,
            manufacturing_site_id=GMP,
            input_dins=[str(issue_din("A1234", 25, random.randint(1, 999_999)))],
            started_at=timestamp(started),
        ),
    )
    mfg.publish(
        coi,
        manufacturing.ProductUnitsCreated(
            coi=coi,
            batch_id=batch_id,
            product_dins=[str(issue_din("W1234", 25, random.randint(1, 999_999)))],
            hold_condition=Condition.CONDITION_FRESH_COLD,
            created_at=timestamp(started + timedelta(days=8)),
        ),
    )
    mfg.close()
    clinic = stand_in(pki, kafka, HOSPITAL, "intake", "collection")
    clinic.publish(
        coi,
        intake.PatientEnrolled(
            coi=coi,
            patient_pseudonym="PSN-1",
            enrolling_site_id=HOSPITAL,
            treating_site_id=HOSPITAL,
        ),
    )
    clinic.close()


def result_request(batch_id: str, test: str, value: str = "") -> pb.RecordQcResultRequest:
    passing, unit, method = PASSING[test]
    value = value or passing
    return pb.RecordQcResultRequest(
        operator=OPERATOR,
        batch_id=batch_id,
        test=test,
        method=method,
        value=value,
        unit=unit,
        result_at=timestamp(datetime.now(UTC)),
        analyst=ANALYST,
    )


def published(kafka: str, pki: Path, batch_id: str) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """This batch's (record, envelope) pairs, read until its post-release failure appears;
    and the chain breaks found."""
    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    consumer = KafkaConsumer(
        RELEASE_TOPIC,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    ours: list[tuple[Any, Any]] = []
    breaks: list[Any] = []
    verifier = ChainVerifier(ring)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                try:
                    envelope = decode(record.value)
                except DecodeError:
                    continue  # another test's deliberately broken record on the shared broker
                if envelope.aggregate_id != str(release_id(batch_id)):
                    continue  # another run's batch
                ours.append((record, envelope))
                location = Location(record.topic, record.partition, record.offset)
                breaks.extend(verifier.feed(envelope, location))
            if any(e.event_type.endswith("PostReleaseFailureRecorded") for _, e in ours):
                return ours, breaks
    finally:
        consumer.close()
    raise AssertionError("the batch's PostReleaseFailureRecorded never reached Kafka")


@pytest.mark.integration
def test_provisional_release_and_post_release_failure_reach_kafka(
    pki: Path, service: ReleaseService, kafka_bootstrap: str
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    batch_id = str(uuid.uuid4())
    publish_facts(pki, kafka_bootstrap, coi, batch_id)
    facts = service.app.facts

    def harvested() -> tuple[str, ...]:
        fact = facts.batch(batch_id)
        return fact.product_dins if fact is not None else ()

    eventually(harvested, "manufacturing's batch facts to be projected")
    eventually(lambda: facts.treating_site(coi), "the treating site to be projected")

    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, QC))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        qc = pb_grpc.ReleaseServiceStub(channel)
        for test in PRE_RELEASE:
            assert qc.RecordQcResult(result_request(batch_id, test), timeout=10).passed
        signature = ESignatureRequest(user_id="u-qp", password=PASSWORD, meaning="approval")
        certified = qc.CertifyProvisionally(
            pb.CertifyProvisionallyRequest(
                operator=OPERATOR, batch_id=batch_id, signature=signature
            ),
            timeout=10,
        ).release
    assert certified.status == "provisionally-certified"

    client = TestClient(service.http_app, raise_server_exceptions=False)
    sterility = client.post(
        f"/v1/batches/{batch_id}/qc-results",
        json={
            "operator": {"user_id": "u-analyst", "printed_name": "Ann Analyst"},
            "test": "sterility",
            "value": "positive",
            "result_at": datetime.now(UTC).isoformat(),
            "analyst": {"user_id": "u-lab", "printed_name": "Lee Lab"},
        },
        headers={"Authorization": f"Bearer {issue_site_token(pki, QC)}"},
    )
    assert sterility.status_code == 201
    failure_id = sterility.json()["post_release_failure_id"]
    assert failure_id == sterility.json()["result_id"]

    records, breaks = published(kafka_bootstrap, pki, batch_id)
    assert not breaks
    envelopes = [envelope for _, envelope in records]
    for record, envelope in records:
        assert envelope.coi == coi and record.key == coi.encode()
        assert envelope.site_id == QC
    types = [e.event_type.rsplit(".", 1)[1] for e in envelopes]
    assert types[0] == "BatchReleaseOpened"
    assert types[-3:] == [
        "ProvisionallyCertified",
        "QcResultRecorded",
        "PostReleaseFailureRecorded",
    ]
    [certification] = [e for e in envelopes if e.event_type.endswith("ProvisionallyCertified")]
    payload = release_events.ProvisionallyCertified.FromString(certification.payload)
    assert payload.batch_id == batch_id and list(payload.pending_tests) == [
        "sterility",
        "vcn",
        "rcl",
    ]
    assert payload.qp_signature.printed_name == "Dr. Quinn Person"
    assert len(payload.qp_signature.record_hash) == 64
    [failure_envelope] = [
        e for e in envelopes if e.event_type.endswith("PostReleaseFailureRecorded")
    ]
    failure = release_events.PostReleaseFailureRecorded.FromString(failure_envelope.payload)
    assert (failure.failure_id, failure.test, failure.released_as) == (
        failure_id,
        "sterility",
        "provisional",
    )


def call_as(pki: Path, service: ReleaseService, site: str, method: str, request: Any) -> Any:
    """Call `method` with `site`'s certificate; the response, or the refusal's status code."""
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        try:
            return getattr(pb_grpc.ReleaseServiceStub(channel), method)(request, timeout=10)
        except grpc.RpcError as error:
            return error.code()


@pytest.mark.integration
def test_only_the_related_sites_read_a_release_and_the_treating_site_accepts_oos(
    pki: Path, service: ReleaseService, kafka_bootstrap: str
) -> None:
    """Issue 13: any QC site read every batch's release record; the OOS acceptance of another
    hospital was PERMISSION_DENIED (an oracle), not NOT_FOUND."""
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    batch_id = str(uuid.uuid4())
    publish_facts(pki, kafka_bootstrap, coi, batch_id)  # treated at HOSPITAL
    facts = service.app.facts
    eventually(lambda: facts.batch(batch_id), "manufacturing's batch facts to be projected")
    eventually(lambda: facts.treating_site(coi), "the treating site to be projected")

    read = pb.GetBatchReleaseRequest(batch_id=batch_id)
    for stranger in (OTHER_QC, OTHER_HOSPITAL):
        assert call_as(pki, service, stranger, "GetBatchRelease", read) == (
            grpc.StatusCode.NOT_FOUND
        ), stranger
    for related in (QC, HOSPITAL, "AUDIT-1"):
        assert call_as(pki, service, related, "GetBatchRelease", read).release.coi == coi
    client = TestClient(service.http_app, raise_server_exceptions=False)

    def token(site: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}

    refused = client.get(f"/v1/batches/{batch_id}", headers=token(OTHER_QC))
    assert refused.status_code == 404 and coi not in refused.text

    for test in PRE_RELEASE:  # viability out of specification: an OOS batch
        value = "60" if test == "viability" else ""
        request = result_request(batch_id, test, value)
        assert call_as(pki, service, QC, "RecordQcResult", request).result_id
    qp = ESignatureRequest(user_id="u-qp", password=PASSWORD, meaning="approval")
    justify = pb.JustifyOosReleaseRequest(
        operator=OPERATOR, batch_id=batch_id, justification="no alternative", signature=qp
    )
    assert call_as(pki, service, QC, "JustifyOosRelease", justify).release.status == (
        "oos-justified"
    )
    doctor = Operator(user_id="u-doc", printed_name="Dr. Tara Treat")
    physician = ESignatureRequest(user_id="u-doc", password=PASSWORD, meaning="responsibility")
    accept = pb.AcceptOosReleaseRequest(operator=doctor, batch_id=batch_id, signature=physician)
    assert call_as(pki, service, OTHER_HOSPITAL, "AcceptOosRelease", accept) == (
        grpc.StatusCode.NOT_FOUND
    )
    body = {
        "operator": {"user_id": "u-doc", "printed_name": "Dr. Tara Treat"},
        "signature": {"user_id": "u-doc", "password": PASSWORD, "meaning": "responsibility"},
    }
    elsewhere = client.post(
        f"/v1/batches/{batch_id}/oos-acceptance", json=body, headers=token(OTHER_HOSPITAL)
    )
    assert elsewhere.status_code == 404
    accepted = call_as(pki, service, HOSPITAL, "AcceptOosRelease", accept)
    assert accepted.release.status == "oos-released"
