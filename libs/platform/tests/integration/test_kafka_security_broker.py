"""Authenticated, encrypted Kafka (issue 12, part 5), against a real broker of its own.

The broker is the local one in its deployment mode (`kafka.sh` with V2V_KAFKA_TLS_DIR): one
SASL_SSL listener (SCRAM-SHA-512), its certificate issued by the consortium CA, ACLs enforced,
provisioned by `v2v_platform.kafka_broker.provision` exactly as docker compose and the Helm
chart provision theirs. Shown:

- a real service (infusion, from its settings: V2V_KAFKA_SECURITY_PROTOCOL=SASL_SSL, the
  consortium CA, its own SCRAM user with a password file) consumes its facts feed through the
  gate and publishes through its relay: a genuine release certification reaches its facts, the
  product receipt it records reaches its topic;
- a producer without credentials (plaintext, or a wrong password) is refused, and a service's
  credentials cannot write another service's topic: none of their records is on the topic;
- the relay's publisher, on either producer (V2V_RELAY_PRODUCER: librdkafka, the default, or
  kafka-python), publishes through the listener with the service's credentials, and a record
  for another service's topic is refused for good (TopicAuthorizationFailedError), the relay's
  NOT_SERVING path.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from v2v.common.v1.common_pb2 import Condition, Operator
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
from v2v_platform.config import load_settings
from v2v_platform.envelope import Actor, SiteSigningKey
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.kafka_broker import ProvisionSettings, provision
from v2v_platform.proto_values import timestamp
from v2v_platform.relay import OutboundRecord, PublishRefused
from v2v_platform.relay.process import RelayProducer, RelaySettings, make_publisher
from v2v_platform.testing.infra import ADMIN_USER, Resolved, start_secure_local_kafka
from v2v_platform.testing.kafka_topics import read_topic
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually

pytestmark = pytest.mark.integration

HOSPITAL, GMP, QC = "HOSP-A", "GMP-B", "QC-1"
MANUFACTURING_TOPIC = "v2v.manufacturing.events.v1"
RELEASE_TOPIC, INTAKE_TOPIC = "v2v.release.events.v1", "v2v.intake.events.v1"
INFUSION_TOPIC = "v2v.infusion.events.v1"
NORA = Operator(user_id="u-nurse", printed_name="Nora Nurse")
REFUSED_WITHIN_MS = 3000  # how long a refused client tries before it gives up


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    ca_file: Path
    passwords: dict[str, str]

    def options(self, user: str, password: str | None = None) -> dict[str, object]:
        """kafka-python options of `user` (its provisioned password unless one is given)."""
        return {
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(self.ca_file),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user,
            "sasl_plain_password": password or self.passwords[user],
        }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    sites = [f"{HOSPITAL}:collection,infusion", f"{GMP}:manufacturing", f"{QC}:qc"]
    init_pki(directory, [parse_site_spec(s) for s in sites])
    return directory


@pytest.fixture(scope="module")
def broker(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    admin_password = secrets.token_urlsafe(18)
    state = tmp_path_factory.mktemp("secure-kafka")
    resolved: Resolved = start_secure_local_kafka(pki, state, admin_password)
    try:
        users = ("intake", "manufacturing", "release", "infusion", "audit")
        passwords = {user: secrets.token_urlsafe(18) for user in users}
        settings = load_settings(
            ProvisionSettings,
            kafka_bootstrap=resolved.address,
            kafka_security_protocol="SASL_SSL",
            kafka_ssl_cafile=pki / "ca.crt",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username=ADMIN_USER,
            kafka_sasl_password=admin_password,
            **{f"kafka_password_{user}": password for user, password in passwords.items()},
        )
        provision(settings)
        yield Broker(resolved.address, pki / "ca.crt", passwords)
    finally:
        resolved.close()


@pytest.fixture
def service(pki: Path, broker: Broker, tmp_path: Path) -> Iterator[InfusionService]:
    password_file = tmp_path / "kafka-password"
    password_file.write_text(broker.passwords["infusion"] + "\n")
    password_file.chmod(0o600)
    settings = load_settings(
        InfusionSettings,
        site_id=HOSPITAL,
        pki_dir=pki,
        sqlite_path=tmp_path / "data" / "infusion.sqlite",
        kafka_bootstrap=broker.bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=pki / "ca.crt",  # the broker's certificate is the consortium CA's
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="infusion",
        kafka_sasl_password_file=password_file,
    )
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    assert running.start_facts_consumer() is not None  # its own group: v2v-infusion-HOSP-A-facts
    yield running
    running.stop()


def signed_by(pki: Path, broker: Broker, site: str, user: str, topic: str, kind: str) -> Any:
    signer = SiteSigningKey.load(site, pki / "sites" / site / "signing.key")
    actor = Actor("u-1", "Some User", "x")
    return SignedEnvelopeProducer(
        broker.bootstrap, topic, signer, actor, kind, client_options=broker.options(user)
    )


def keys_on(broker: Broker, topic: str) -> list[bytes]:
    records = read_topic(broker.bootstrap, topic, client_options=broker.options("audit"))
    return [record.key for _, record in records]


def test_a_service_consumes_and_publishes_through_the_authenticated_tls_listener(
    pki: Path, broker: Broker, service: InfusionService
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    din = str(issue_din("W1234", 25, random.randint(1, 999_999)))
    batch_id = str(uuid4())
    made = datetime.now(UTC) - timedelta(hours=2)
    gmp = signed_by(pki, broker, GMP, "manufacturing", MANUFACTURING_TOPIC, "Batch")
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
    enrolment = signed_by(pki, broker, HOSPITAL, "intake", INTAKE_TOPIC, "Therapy")
    enrolment.publish(
        coi,
        intake.PatientEnrolled(
            coi=coi, patient_pseudonym="p-it", enrolling_site_id=HOSPITAL, treating_site_id=HOSPITAL
        ),
    )
    qc = signed_by(pki, broker, QC, "release", RELEASE_TOPIC, "BatchRelease")
    qc.publish(
        coi,
        release.FinallyCertified(
            coi=coi,
            batch_id=batch_id,
            spec_version="v1",
            product_dins=[din],
            certified_at=timestamp(made + timedelta(hours=1)),
        ),
    )
    facts = service.app.facts
    eventually(
        lambda: facts.release_of(batch_id).status is ReleaseStatus.FINAL,
        "the certification, read and verified through SASL_SSL, to reach the facts",
    )
    eventually(lambda: facts.treating_site_of(coi) == HOSPITAL, "intake's enrolment")

    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, HOSPITAL))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        ward = pb_grpc.InfusionServiceStub(channel)
        unit = ward.ReceiveProduct(pb.ReceiveProductRequest(operator=NORA, din=din), timeout=10)
    assert unit.unit.release_status == "final"
    eventually(
        lambda: coi.encode() in keys_on(broker, INFUSION_TOPIC),
        "the relay to publish the receipt through SASL_SSL",
    )
    assert service.runtime.health.report().ready, service.runtime.health.report().describe()
    for producer in (gmp, enrolment, qc):
        producer.close()


PAYLOAD = b"\x00a forged release decision"


def produce(broker: Broker, topic: str, key: bytes, **options: object) -> Any:
    """One record, acknowledged (its metadata) or refused (the client's KafkaError)."""
    producer = None
    try:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **options)
        return producer.send(topic, key=key, value=PAYLOAD).get(timeout=10)
    finally:
        if producer is not None:
            producer.close(timeout=2)


def test_no_record_without_credentials_nor_beyond_a_services_own_topic(broker: Broker) -> None:
    plaintext, wrong_password, not_its_topic = (f"forged-{uuid4()}".encode() for _ in range(3))
    quick = {"bootstrap_timeout_ms": REFUSED_WITHIN_MS, "max_block_ms": REFUSED_WITHIN_MS}

    with pytest.raises(KafkaError):  # no TLS, no SASL: the broker never completes a handshake
        produce(broker, RELEASE_TOPIC, plaintext, **quick)
    with pytest.raises(KafkaError):  # TLS, but the SCRAM proof fails
        produce(
            broker, RELEASE_TOPIC, wrong_password, **broker.options("release", "guessed"), **quick
        )
    with pytest.raises(TopicAuthorizationFailedError):  # infusion's credentials, release's topic
        produce(broker, RELEASE_TOPIC, not_its_topic, **broker.options("infusion"))
    own = produce(broker, INFUSION_TOPIC, not_its_topic, **broker.options("infusion"))
    assert own.topic == INFUSION_TOPIC  # the same credentials write their own topic

    on_release = keys_on(broker, RELEASE_TOPIC)
    assert not {plaintext, wrong_password, not_its_topic} & set(on_release)


@pytest.mark.parametrize("producer", ["librdkafka", "kafka-python"])
def test_the_relay_publishes_through_the_listener_with_either_producer(
    pki: Path, broker: Broker, tmp_path: Path, producer: RelayProducer
) -> None:
    settings = load_settings(
        RelaySettings,
        context="infusion",
        site_id=HOSPITAL,
        signing_key_file=pki / "sites" / HOSPITAL / "signing.key",
        sqlite_path=tmp_path / "infusion.sqlite",
        kafka_bootstrap=broker.bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=pki / "ca.crt",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="infusion",
        kafka_sasl_password=broker.passwords["infusion"],
        relay_producer=producer,
    )
    key = f"relay-{producer}-{uuid4()}".encode()
    publisher = make_publisher(
        settings.relay_producer, broker.bootstrap, "v2v-relay-infusion", settings
    )
    try:
        publisher.publish([OutboundRecord(INFUSION_TOPIC, key, PAYLOAD, [])])
        not_its_topic = OutboundRecord(RELEASE_TOPIC, key, PAYLOAD, [])
        with pytest.raises(PublishRefused) as refused:
            publisher.publish([not_its_topic])
        assert refused.value.record is not_its_topic
        assert isinstance(refused.value.error, TopicAuthorizationFailedError)
    finally:
        publisher.close()
    assert key in keys_on(broker, INFUSION_TOPIC)
    assert key not in keys_on(broker, RELEASE_TOPIC)
