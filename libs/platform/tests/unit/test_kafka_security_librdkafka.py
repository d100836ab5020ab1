"""The V2V_KAFKA_* security settings in librdkafka's names (`librdkafka_options`, issue 18
item 3): the same security as kafka-python's `client_options`, and options a librdkafka client
(confluent-kafka) accepts as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer

from v2v_platform.config import KafkaSecuritySettings, load_settings
from v2v_platform.kafka_security import SECURITY_FIELDS, librdkafka_options


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECURITY_FIELDS:
        monkeypatch.delenv(f"V2V_{name.upper()}", raising=False)


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def test_plaintext_is_the_default() -> None:
    assert librdkafka_options(load_settings(KafkaSecuritySettings)) == {
        "security.protocol": "PLAINTEXT"
    }


def test_sasl_ssl_gives_tls_and_scram_in_librdkafka_names(ca: Path) -> None:
    settings = load_settings(
        KafkaSecuritySettings,
        kafka_security_protocol="sasl_ssl",
        kafka_ssl_cafile=ca,
        kafka_sasl_mechanism="scram-sha-512",
        kafka_sasl_username="projection",
        kafka_sasl_password="s3cret-s3cret",
    )
    assert librdkafka_options(settings) == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(ca),
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "projection",
        "sasl.password": "s3cret-s3cret",
    }


def test_a_password_file_and_an_unchecked_host_name(ca: Path, tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("from-a-file\n")
    secret.chmod(0o600)
    settings = load_settings(
        KafkaSecuritySettings,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=ca,
        kafka_ssl_check_hostname=False,
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="audit",
        kafka_sasl_password_file=secret,
    )
    options = librdkafka_options(settings)
    assert options["sasl.password"] == "from-a-file"
    assert options["sasl.mechanisms"] == "PLAIN"
    assert options["ssl.endpoint.identification.algorithm"] == "none"


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
    )
    assert librdkafka_options(settings) == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(ca),
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.certificate.location": str(cert),
        "ssl.key.location": str(key),
    }


def test_librdkafka_accepts_every_name_it_is_given() -> None:
    settings = load_settings(
        KafkaSecuritySettings,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="projection",
        kafka_sasl_password="s3cret-s3cret",
    )
    options = librdkafka_options(settings)
    # an unknown name or value would raise KafkaException here (no broker is contacted)
    Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", **options}).close()
