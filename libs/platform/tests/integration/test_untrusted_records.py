"""A real service consumer (infusion's facts consumer, on PostgreSQL and the real broker)
refuses what it cannot verify, and goes on.

Put on the topics it reads: a record that is not an envelope, a `FinallyCertified` signed with
a random key that claims to be the QC lab, one signed by a real consortium site that does not
hold the `qc` role, and a release decision put on the intake topic by that site. Each is
quarantined with its reason (the operator's `v2v quarantine list` shows them), the consumer
thread stays alive, the batch's release status stays `none` and the bedside scan is refused
`not-released`. A genuine certification published after them is applied.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from v2v.common.v1.common_pb2 import Condition, ESignatureRequest, Operator
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as pb_grpc
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.adapters.facts_projection import CONSUMER_NAME, FACTS_FEED
from v2v_infusion.bootstrap import InfusionService, bootstrap
from v2v_infusion.domain.values import ReleaseStatus
from v2v_infusion.settings import InfusionSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.cli import app as v2v
from v2v_platform.consumer import EnvelopeConsumer
from v2v_platform.envelope import Actor, SiteSigningKey
from v2v_platform.esign import Signer, hash_password, open_signer_store
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.relay import ensure_topics
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually

pytestmark = pytest.mark.integration

HOSPITAL, GMP, QC = "HOSP-A", "GMP-B", "QC-1"
RELEASE_TOPIC, INTAKE_TOPIC = "v2v.release.events.v1", "v2v.intake.events.v1"
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")
NORA_PASSWORD = "nora's own pass phrase"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{HOSPITAL}:collection,infusion", f"{GMP}:manufacturing", f"{QC}:qc"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[tuple[InfusionService, EnvelopeConsumer]]:
    ensure_topics(
        kafka_bootstrap, [f"v2v.{c}.events.v1" for c in ("manufacturing", "release", "intake")], 6
    )
    settings = InfusionSettings(
        site_id=HOSPITAL,
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
    )
    signers = open_signer_store(postgres_database.dsn, None)  # `v2v signer add` does this
    nurse = frozenset({"nurse"})
    signers.put(
        Signer(HOSPITAL, NORA.user_id, NORA.printed_name, nurse, hash_password(NORA_PASSWORD))
    )
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    consumer = running.start_facts_consumer(group_id=f"untrusted-it-{random.getrandbits(32):08x}")
    assert consumer is not None
    yield running, consumer
    running.stop()


def producer(pki: Path, kafka: str, site: str, topic: str, kind: str) -> SignedEnvelopeProducer:
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    return SignedEnvelopeProducer(kafka, topic, signer, Actor("u-1", "Some User", "x"), kind)


def quarantined(dsn: str, coi: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT topic, reasons, claimed_site, status FROM v2v_consumer_quarantine"
            " WHERE consumer = %s AND coi = %s ORDER BY topic, reasons",
            (CONSUMER_NAME, coi),
        ).fetchall()
    return [(str(t), str(r), str(s), str(st)) for t, r, s, st in rows]


def consumer_alive() -> bool:
    name = f"infusion-{FACTS_FEED.name}-consumer"
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_forged_and_poison_records_are_quarantined_and_the_consumer_goes_on(
    pki: Path,
    service: tuple[InfusionService, EnvelopeConsumer],
    kafka_bootstrap: str,
    postgres_database: PostgresDatabase,
) -> None:
    running, consumer = service
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    din = str(issue_din("W1234", 25, random.randint(1, 999_999)))
    batch_id = str(uuid4())
    made = datetime.now(UTC) - timedelta(hours=2)

    gmp = producer(pki, kafka_bootstrap, GMP, "v2v.manufacturing.events.v1", "Batch")
    gmp.publish(
        coi,
        manufacturing.ProductUnitsCreated(
            coi=coi,
            batch_id=batch_id,
            product_dins=[din],
            hold_condition=Condition.CONDITION_FRESH_COLD,
            created_at=timestamp(made),
        ),
    )
    hospital_intake = producer(pki, kafka_bootstrap, HOSPITAL, INTAKE_TOPIC, "Therapy")
    hospital_intake.publish(
        coi,
        intake.PatientEnrolled(
            coi=coi, patient_pseudonym="p-it", enrolling_site_id=HOSPITAL, treating_site_id=HOSPITAL
        ),
    )

    def certification() -> release.FinallyCertified:
        return release.FinallyCertified(
            coi=coi,
            batch_id=batch_id,
            spec_version="v1",
            product_dins=[din],
            certified_at=timestamp(made + timedelta(hours=1)),
        )

    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    raw.send(RELEASE_TOPIC, key=coi.encode(), value=b"\x00\xffnot an envelope").get(timeout=30)
    raw.close()
    forger = SiteSigningKey.generate(QC)  # a random key that claims to be the QC lab's
    actor = Actor("u-qp", "Quinn Person", "qp")
    forged = SignedEnvelopeProducer(kafka_bootstrap, RELEASE_TOPIC, forger, actor, "BatchRelease")
    forged.publish(coi, certification())
    not_qc = producer(pki, kafka_bootstrap, HOSPITAL, RELEASE_TOPIC, "BatchRelease")
    not_qc.publish(coi, certification())  # a real site, signed with its real key, not QC
    hospital_intake.publish(coi, certification())  # a release decision on the intake topic

    expected = [
        (INTAKE_TOPIC, "event_type", HOSPITAL, "quarantined"),
        (RELEASE_TOPIC, "authorship", HOSPITAL, "quarantined"),
        (RELEASE_TOPIC, "decode", "", "quarantined"),
        (RELEASE_TOPIC, "signature", QC, "quarantined"),
    ]
    dsn = postgres_database.dsn
    eventually(lambda: quarantined(dsn, coi) == expected, "the four records in the quarantine")
    facts = running.app.facts
    eventually(lambda: facts.product_unit(din[:13]), "manufacturing's product unit")
    eventually(lambda: facts.treating_site_of(coi) == HOSPITAL, "intake's enrolment")
    assert consumer_alive()
    assert consumer.stats.quarantined >= 4
    assert facts.release_of(batch_id).status is ReleaseStatus.NONE

    assert running.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, HOSPITAL))
    with secure_channel(f"127.0.0.1:{running.grpc.port}", credentials) as channel:
        ward = pb_grpc.InfusionServiceStub(channel)
        unit = ward.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=10)
        assert unit.unit.release_status == "none"
        proven = ESignatureRequest(
            user_id=NORA.user_id, password=NORA_PASSWORD, meaning="verification"
        )
        scan = pb.ScanAtBedsideRequest(operator=NORA, wristband_coi=coi, din=din, signature=proven)
        with pytest.raises(grpc.RpcError) as refused:
            ward.ScanAtBedside(scan, timeout=10)
        assert "not-released" in (refused.value.details() or "")

    listed = CliRunner().invoke(
        v2v, ["quarantine", "list", "--consumer", CONSUMER_NAME, "--postgres-dsn", dsn]
    )
    assert listed.exit_code == 0, listed.output
    mine = [line for line in listed.output.splitlines() if f"coi={coi}" in line]
    assert len(mine) == 4
    assert any("quarantined  signature" in line and f"claimed={QC}" in line for line in mine)

    qc = producer(pki, kafka_bootstrap, QC, RELEASE_TOPIC, "BatchRelease")
    qc.publish(coi, certification())  # the genuine one, after the bad ones on that partition
    eventually(
        lambda: facts.release_of(batch_id).status is ReleaseStatus.FINAL,
        "the genuine certification to be applied",
    )
    assert consumer_alive()
    assert quarantined(dsn, coi) == expected
    for closing in (gmp, hospital_intake, forged, not_qc, qc):
        closing.close()
