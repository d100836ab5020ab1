"""Release on PostgreSQL + Kafka with data entered after the fact (issue 14): a batch
harvested three days ago (manufacturing's facts projected from its topic) is certified now,
through gRPC and HTTP, for when the QP certified it two days ago. The decision is stored and
published with that clinical time (payload and envelope `occurred_at`), apart from when it was
recorded (`recorded_at`) and signed (`signed_at`): both now. A certification dated before the
harvest, and a final certification dated before the provisional one, are refused naming the
field (INVALID_ARGUMENT / 422).

Before issue 14 a certification had no time but the server's: the stage "release" of a batch
entered after the fact lasted 0 hours and nothing stopped a decision before its product."""

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
from v2v_platform.envelope import decode
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.esign import Signer, hash_password
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import from_timestamp, timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_release.bootstrap import ReleaseService, bootstrap
from v2v_release.domain.batch_release import release_id
from v2v_release.settings import ReleaseSettings
from v2v_testkit.release import PASSING, POST_RELEASE, PRE_RELEASE

pytestmark = pytest.mark.integration
QC, GMP, HOSPITAL = "QC-1", "GMP-B", "HOSP-A"
PASSWORD = "qp signing password"
OPERATOR = Operator(user_id="u-analyst", printed_name="Ann Analyst")
ANALYST = Operator(user_id="u-lab", printed_name="Lee Lab")
QP = ESignatureRequest(user_id="u-qp", password=PASSWORD, meaning="approval")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{QC}:qc", f"{GMP}:manufacturing", f"{HOSPITAL}:collection,infusion"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[ReleaseService]:
    settings = ReleaseSettings(
        site_id=QC, pki_dir=pki, postgres_dsn=postgres_database.dsn, kafka_bootstrap=kafka_bootstrap
    )
    running = bootstrap(settings)
    qp = Signer(QC, "u-qp", "Dr. Quinn Person", frozenset({"qp"}), hash_password(PASSWORD))
    running.signers.put(qp)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    running.start_facts_consumer(group_id=f"release-ct-{random.getrandbits(32):08x}")
    yield running
    running.stop()


def publish_batch(
    pki: Path, kafka: str, coi: str, batch_id: str, started: datetime, harvested: datetime
) -> None:
    """Manufacturing's start and harvest, and intake's enrolment, as their relays would."""
    signer = SiteSigningKey.load(GMP, pki / "sites" / GMP / "signing.key")
    mfg = SignedEnvelopeProducer(
        kafka, "v2v.manufacturing.events.v1", signer, Actor("u-1", "U", "manufacturing")
    )
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
            created_at=timestamp(harvested),
        ),
    )
    mfg.close()
    hospital = SiteSigningKey.load(HOSPITAL, pki / "sites" / HOSPITAL / "signing.key")
    clinic = SignedEnvelopeProducer(
        kafka, "v2v.intake.events.v1", hospital, Actor("u-2", "C", "collection")
    )
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


def result(batch_id: str, test: str, at: datetime) -> pb.RecordQcResultRequest:
    value, unit, method = PASSING[test]
    return pb.RecordQcResultRequest(
        operator=OPERATOR,
        batch_id=batch_id,
        test=test,
        method=method,
        value=value,
        unit=unit,
        result_at=timestamp(at),
        analyst=ANALYST,
    )


def certification_on_kafka(kafka: str, batch_id: str) -> Any:
    """The batch's ProvisionallyCertified envelope, once the relay published it."""
    consumer = KafkaConsumer(
        "v2v.release.events.v1",
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                try:
                    envelope = decode(record.value)
                except DecodeError:
                    continue  # another test's deliberately broken record on the shared broker
                if envelope.aggregate_id == str(release_id(batch_id)) and (
                    envelope.event_type.endswith("ProvisionallyCertified")
                ):
                    return envelope
    finally:
        consumer.close()
    raise AssertionError("the batch's ProvisionallyCertified never reached Kafka")


def test_a_certification_entered_after_the_fact_is_stored_and_judged_by_its_clinical_time(
    pki: Path, service: ReleaseService, kafka_bootstrap: str
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    batch_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    harvested = now - timedelta(days=3)
    publish_batch(pki, kafka_bootstrap, coi, batch_id, now - timedelta(days=12), harvested)
    facts = service.app.facts

    def harvest_known() -> datetime | None:
        fact = facts.batch(batch_id)
        return fact.harvested_at if fact is not None else None

    assert eventually(harvest_known, "manufacturing's harvest to be projected") == harvested

    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, QC))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        qc = pb_grpc.ReleaseServiceStub(channel)
        for test in PRE_RELEASE:
            qc.RecordQcResult(result(batch_id, test, harvested + timedelta(hours=6)), timeout=10)
        before_harvest = pb.CertifyProvisionallyRequest(
            operator=OPERATOR,
            batch_id=batch_id,
            signature=QP,
            certified_at=timestamp(harvested - timedelta(minutes=50)),
        )
        with pytest.raises(grpc.RpcError) as refused:
            qc.CertifyProvisionally(before_harvest, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith("certified_at ")
        assert "before the batch's harvest" in refused.value.details()

    client = TestClient(service.http_app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {issue_site_token(pki, QC)}"}
    body = {
        "operator": {"user_id": "u-analyst", "printed_name": "Ann Analyst"},
        "signature": {"user_id": "u-qp", "password": PASSWORD, "meaning": "approval"},
    }
    certified_at = now - timedelta(days=2)
    answer = client.post(
        f"/v1/batches/{batch_id}/provisional-certification",
        json={**body, "certified_at": certified_at.isoformat()},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    [decision] = answer.json()["decisions"]
    assert datetime.fromisoformat(decision["decided_at"]) == certified_at
    assert datetime.fromisoformat(decision["signature"]["signed_at"]) >= now

    for test in POST_RELEASE:
        late = client.post(
            f"/v1/batches/{batch_id}/qc-results",
            json={
                "operator": body["operator"],
                "test": test,
                "value": PASSING[test][0],
                "unit": PASSING[test][1],
                "method": PASSING[test][2],
                "result_at": (harvested + timedelta(hours=30)).isoformat(),
                "analyst": {"user_id": "u-lab", "printed_name": "Lee Lab"},
            },
            headers=headers,
        )
        assert late.status_code == 201, late.text
    before_provisional = client.post(
        f"/v1/batches/{batch_id}/final-certification",
        json={**body, "certified_at": (certified_at - timedelta(hours=1)).isoformat()},
        headers=headers,
    )
    assert before_provisional.status_code == 422
    assert before_provisional.json()["detail"].startswith("certified_at ")
    assert "before the provisional decision" in before_provisional.json()["detail"]

    envelope = certification_on_kafka(kafka_bootstrap, batch_id)
    payload = release_events.ProvisionallyCertified.FromString(envelope.payload)
    assert from_timestamp(payload.certified_at) == certified_at
    assert from_timestamp(envelope.occurred_at) == certified_at
    assert from_timestamp(envelope.recorded_at) >= now  # recorded now, apart
    assert from_timestamp(payload.qp_signature.signed_at) >= now  # signed now (server time)
