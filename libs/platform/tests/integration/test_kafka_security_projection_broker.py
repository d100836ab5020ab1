"""The projection reads through the authenticated, encrypted listener with librdkafka (issue
18 item 3, ADR 0012), against a real broker of its own (the local one in its deployment mode,
as in test_kafka_security_broker.py: SASL_SSL with SCRAM-SHA-512, ACLs enforced, provisioned
by `v2v_platform.kafka_broker.provision`).

The projection core, built from its settings (V2V_KAFKA_SECURITY_PROTOCOL=SASL_SSL, the
consortium CA, its own SCRAM user `projection` with a password file, consumer group
`v2v-projection`), folds a generated consortium history published on the context topics, and
its catch-up measurement (a librdkafka admin client with the same credentials) finds it caught
up: it becomes ready. With a wrong password it folds nothing, is never ready, and its health says
why.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaProducer

from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import load_settings
from v2v_platform.envelope import decode
from v2v_platform.kafka_broker import ProvisionSettings, provision
from v2v_platform.testing.infra import ADMIN_USER, Resolved, start_secure_local_kafka
from v2v_platform.testing.producing import eventually
from v2v_projection.bootstrap import ProjectionService, bootstrap
from v2v_projection.settings import ProjectionSettings
from v2v_testkit.audit import trust_keys
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

pytestmark = pytest.mark.integration

SITES = ("HOSP-A:collection,infusion", "PROJ-1:auditor")


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    ca_file: Path
    admin_password: str
    projection_password: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture(scope="module")
def history(pki: Path) -> GeneratedHistory:
    generated = generate_history(1818, 3)
    trust_keys(pki, generated.keys)
    return generated


@pytest.fixture(scope="module")
def broker(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    admin_password = secrets.token_urlsafe(18)
    projection_password = secrets.token_urlsafe(18)
    state = tmp_path_factory.mktemp("secure-kafka-projection")
    resolved: Resolved = start_secure_local_kafka(pki, state, admin_password)
    try:
        settings = load_settings(
            ProvisionSettings,
            kafka_bootstrap=resolved.address,
            kafka_security_protocol="SASL_SSL",
            kafka_ssl_cafile=pki / "ca.crt",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username=ADMIN_USER,
            kafka_sasl_password=admin_password,
            kafka_password_projection=projection_password,
        )
        provision(settings)  # the topics, the projection's SCRAM user and its ACLs
        yield Broker(resolved.address, pki / "ca.crt", admin_password, projection_password)
    finally:
        resolved.close()


def publish(broker: Broker, history: GeneratedHistory) -> None:
    """The history on the context topics, keyed by COI, as the relays publish it."""
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        linger_ms=5,
        security_protocol="SASL_SSL",
        ssl_cafile=str(broker.ca_file),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=ADMIN_USER,
        sasl_plain_password=broker.admin_password,
    )
    try:
        for topic, values in history.by_topic.items():
            for value in values:
                producer.send(topic, key=decode(value).coi.encode(), value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def projection(pki: Path, broker: Broker, tmp_path: Path, password: str) -> ProjectionService:
    password_file = tmp_path / "kafka-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    settings = load_settings(
        ProjectionSettings,
        site_id="PROJ-1",
        pki_dir=pki,
        sqlite_path=tmp_path / "projection.sqlite",
        kafka_bootstrap=broker.bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=pki / "ca.crt",  # the broker's certificate is the consortium CA's
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="projection",
        kafka_sasl_password_file=password_file,
        catch_up_max_lag=0,
    )
    return bootstrap(settings)


def taken(service: ProjectionService, history: GeneratedHistory) -> int:
    counted: int = service.projection.read(
        lambda fold: sum(fold.event_count(coi) for coi in history.cois)
    )
    return counted


def test_the_projection_reads_and_catches_up_through_the_authenticated_tls_listener(
    pki: Path, broker: Broker, history: GeneratedHistory, tmp_path: Path
) -> None:
    publish(broker, history)
    service = projection(pki, broker, tmp_path, broker.projection_password)
    try:
        consumer = service.start_consumer()
        eventually(
            lambda: taken(service, history) == history.event_count,
            "the history, read through SASL_SSL with librdkafka, to be folded",
        )
        assert consumer.records_quarantined == 0
        eventually(lambda: service.runtime.health.report().ready, "caught up: ready")
        assert service.catch_up is not None and service.catch_up.lag is not None
        assert service.catch_up.lag.worst == 0
    finally:
        service.stop()


def test_a_wrong_password_folds_nothing_and_is_never_ready(
    pki: Path, broker: Broker, history: GeneratedHistory, tmp_path: Path
) -> None:
    service = projection(pki, broker, tmp_path, "guessed-" + secrets.token_urlsafe(8))
    try:
        service.start_consumer()
        catch_up = service.catch_up
        assert catch_up is not None
        eventually(
            lambda: "lag not measured: " in service.runtime.health.report().describe(),
            "the catch-up measurement to fail, saying why",
            timeout_s=30,
        )
        assert not service.runtime.health.report().ready
        assert taken(service, history) == 0
    finally:
        service.stop()
