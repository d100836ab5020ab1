"""Kafka client security settings (V2V_KAFKA_*): validated at start, naming the variable, and
turned into kafka-python options in one place, which every client of a service is built with."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from v2v_platform import service_runtime
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import (
    ConfigurationError,
    KafkaSecuritySettings,
    PublishingServiceSettings,
    load_settings,
)
from v2v_platform.kafka_security import SECURITY_FIELDS, client_options, environment_options
from v2v_platform.relay import process
from v2v_platform.relay.process import RelaySettings
from v2v_platform.service_runtime import RuntimeService, relay_settings_for
from v2v_platform.testing.outbox_app import SPEC


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECURITY_FIELDS:
        monkeypatch.delenv(f"V2V_{name.upper()}", raising=False)


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def problems(**settings: Any) -> str:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(KafkaSecuritySettings, **settings)
    assert refused.value.code == 2
    return str(refused.value)


def test_plaintext_is_the_default() -> None:
    assert client_options(load_settings(KafkaSecuritySettings)) == {
        "security_protocol": "PLAINTEXT"
    }


def test_sasl_ssl_gives_tls_and_scram_options(ca: Path) -> None:
    settings = load_settings(
        KafkaSecuritySettings,
        kafka_security_protocol="sasl_ssl",
        kafka_ssl_cafile=ca,
        kafka_sasl_mechanism="scram-sha-512",
        kafka_sasl_username="release",
        kafka_sasl_password="s3cret-s3cret",
    )
    assert client_options(settings) == {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(ca),
        "ssl_check_hostname": True,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "release",
        "sasl_plain_password": "s3cret-s3cret",
    }
    assert "s3cret" not in repr(settings)


def test_mutual_tls_gives_the_client_certificate(ca: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("cert")
    key.write_text("key")
    settings = load_settings(
        KafkaSecuritySettings,
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=ca,
        kafka_ssl_certfile=cert,
        kafka_ssl_keyfile=key,
        kafka_ssl_check_hostname=False,
    )
    assert client_options(settings) == {
        "security_protocol": "SSL",
        "ssl_cafile": str(ca),
        "ssl_check_hostname": False,
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
    }


def test_the_password_may_come_from_a_file(ca: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    settings = load_settings(
        KafkaSecuritySettings,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="intake",
        kafka_sasl_password_file=secret,
    )
    assert client_options(settings)["sasl_plain_password"] == "from-a-file"
    assert "ssl_cafile" not in client_options(settings)


def test_tls_without_a_readable_ca_file_stops_naming_the_variable(tmp_path: Path) -> None:
    assert "V2V_KAFKA_SSL_CAFILE: Value error, required with V2V_KAFKA_SECURITY_PROTOCOL=SSL" in (
        problems(kafka_security_protocol="SSL")
    )
    missing = problems(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "absent.crt")
    assert "V2V_KAFKA_SSL_CAFILE: Value error, no such file" in missing


def test_sasl_without_credentials_names_each_missing_variable(ca: Path) -> None:
    text = problems(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=ca)
    assert "V2V_KAFKA_SASL_MECHANISM: Value error, required" in text
    assert "V2V_KAFKA_SASL_USERNAME: Value error, required" in text
    assert "V2V_KAFKA_SASL_PASSWORD_FILE: Value error, set V2V_KAFKA_SASL_PASSWORD or" in text
    unknown = problems(kafka_security_protocol="TLS")
    assert "V2V_KAFKA_SECURITY_PROTOCOL" in unknown


def test_settings_the_protocol_would_ignore_are_refused(ca: Path, tmp_path: Path) -> None:
    """A CA file or a SASL user with PLAINTEXT is a deployment mistake: the process stops
    instead of talking in clear to a broker its operator meant to be encrypted."""
    assert "V2V_KAFKA_SSL_CAFILE: Value error, V2V_KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in (
        problems(kafka_ssl_cafile=ca)
    )
    assert "V2V_KAFKA_SASL_USERNAME: Value error, V2V_KAFKA_SECURITY_PROTOCOL is SSL" in (
        problems(kafka_security_protocol="SSL", kafka_ssl_cafile=ca, kafka_sasl_username="x")
    )
    cert = tmp_path / "tls.crt"
    cert.write_text("cert")
    alone = problems(kafka_security_protocol="SSL", kafka_ssl_cafile=ca, kafka_ssl_certfile=cert)
    assert "V2V_KAFKA_SSL_KEYFILE: Value error, set V2V_KAFKA_SSL_CERTFILE and" in alone
    secret = tmp_path / "password"
    secret.write_text("pw")
    both = problems(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="pw",
        kafka_sasl_password_file=secret,
    )
    assert "V2V_KAFKA_SASL_PASSWORD_FILE: Value error, set V2V_KAFKA_SASL_PASSWORD or" in both


def test_the_environment_is_read_and_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, ca: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("V2V_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("V2V_KAFKA_SSL_CAFILE", str(ca))
    monkeypatch.setenv("V2V_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("V2V_KAFKA_SASL_USERNAME", "audit")
    with pytest.raises(ConfigurationError):
        environment_options()
    assert "V2V_KAFKA_SASL_PASSWORD_FILE" in capsys.readouterr().err
    monkeypatch.setenv("V2V_KAFKA_SASL_PASSWORD", "pw-from-env")
    assert environment_options()["sasl_plain_username"] == "audit"


# ---------------------------------------------------------------- every client gets them


class DemoSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:0"
    http_port: int = 0


@dataclass
class DemoService(RuntimeService):
    context = "intake"
    relay_spec = SPEC
    settings: DemoSettings
    app: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec("HOSP-A:collection")])
    return directory


def secured(pki: Path, **extra: Any) -> DemoSettings:
    return load_settings(
        DemoSettings,
        site_id="HOSP-A",
        pki_dir=pki,
        kafka_bootstrap="kafka:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=pki / "ca.crt",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="intake",
        kafka_sasl_password="intake-password",
        **extra,
    )


EXPECTED = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "intake",
    "sasl_plain_password": "intake-password",
}


def test_a_services_relay_settings_carry_its_security(pki: Path, tmp_path: Path) -> None:
    settings = secured(pki, sqlite_path=tmp_path / "events.sqlite")
    relay = relay_settings_for("intake", settings)
    assert isinstance(relay, RelaySettings)
    assert client_options(relay) == client_options(settings)
    assert client_options(relay).items() >= EXPECTED.items()


def test_the_relay_producer_and_topic_admin_authenticate(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: dict[str, dict[str, Any]] = {}

    class Publisher:
        def __init__(self, bootstrap: str, client_id: str, **options: Any) -> None:
            built["producer"] = options

        def close(self) -> None:
            pass

    def ensure_topics(
        bootstrap: str, topics: Any, partitions: int, rf: int, **options: Any
    ) -> None:
        built["admin"] = options

    monkeypatch.setattr(process, "KafkaPublisher", Publisher)
    monkeypatch.setattr(process, "ensure_topics", ensure_topics)
    monkeypatch.setenv("V2V_RELAY_PRODUCER", "kafka-python")  # issue 18: librdkafka is the default
    settings = relay_settings_for("intake", secured(pki, sqlite_path=tmp_path / "events.sqlite"))
    runtime = process.build_relay(SPEC, settings)
    runtime.close()
    assert built["producer"].items() >= EXPECTED.items()
    assert built["admin"].items() >= EXPECTED.items()
    assert built["admin"]["ssl_cafile"] == str(pki / "ca.crt")


def test_every_envelope_consumer_authenticates(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dict[str, Any]] = []

    class Consumer:
        def __init__(self, **kwargs: Any) -> None:
            built.append(kwargs)
            self.closed = threading.Event()

        def poll_once(self, timeout_ms: int) -> None:
            self.closed.wait(timeout_ms / 1000)

        def close(self) -> None:
            self.closed.set()

    monkeypatch.setattr(service_runtime, "EnvelopeConsumer", Consumer)
    service = DemoService(secured(pki, sqlite_path=tmp_path / "events.sqlite"), "the app")
    service.start_projection(
        "facts",
        contexts=["manufacturing"],
        projection=lambda style: lambda unit, delivered: None,
        consumer_name="demo-facts",
        sqlite_path=tmp_path / "facts.sqlite",
        create_tables=lambda connection: None,
    )
    service.runtime.stop()
    assert built[0].items() >= EXPECTED.items()
    assert built[0]["bootstrap"] == "kafka:9092"
