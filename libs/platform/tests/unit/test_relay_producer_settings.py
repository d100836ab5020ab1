"""V2V_RELAY_PRODUCER (issue 18, relay >= 2x events/s): a relay built from its settings
publishes through librdkafka by default, authenticated with the V2V_KAFKA_* settings in
librdkafka's names (`kafka_security.librdkafka_options`), and through kafka-python's producer,
with kafka-python's names (`client_options`), when the variable says kafka-python; the
librdkafka producer's configuration keeps the relay's guarantees (acks=all, idempotent, 5 in
flight) and kafka-python's partitioning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from v2v_platform.config import load_settings
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.kafka_security import SECURITY_FIELDS, client_options, librdkafka_options
from v2v_platform.relay import process
from v2v_platform.relay.librdkafka import LIBRDKAFKA_DEFAULTS, RdKafkaPublisher, rdkafka_config
from v2v_platform.relay.process import RelaySettings
from v2v_platform.testing.outbox_app import SITE_ID, SPEC


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SECURITY_FIELDS, "relay_producer"):
        monkeypatch.delenv(f"V2V_{name.upper()}", raising=False)


def _settings(tmp_path: Path) -> RelaySettings:
    key = tmp_path / "signing.key"
    SiteSigningKey.generate(SITE_ID).save(key)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return load_settings(
        RelaySettings,
        context="intake",
        site_id=SITE_ID,
        signing_key_file=key,
        sqlite_path=tmp_path / "events.sqlite",
        kafka_bootstrap="kafka:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=ca,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="intake",
        kafka_sasl_password="intake-password",
    )


def _built(monkeypatch: pytest.MonkeyPatch, settings: RelaySettings) -> dict[str, Any]:
    built: dict[str, Any] = {}
    kind = settings.relay_producer

    class Recorded:
        def __init__(self, bootstrap: str, client_id: str, **options: Any) -> None:
            built.update(options, kind=kind, bootstrap=bootstrap, client_id=client_id)

        def publish(self, records: Any) -> None:
            raise AssertionError("nothing is published here")

        def close(self) -> None:
            pass

    def ensure_topics(*args: Any, **options: Any) -> None:
        built["admin"] = options

    name = "KafkaPublisher" if kind == "kafka-python" else "RdKafkaPublisher"
    monkeypatch.setattr(process, name, Recorded)
    monkeypatch.setattr(process, "ensure_topics", ensure_topics)
    process.build_relay(SPEC, settings).close()
    return built


def test_the_relay_publishes_through_librdkafka_by_default_authenticated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    assert settings.relay_producer == "librdkafka"
    built = _built(monkeypatch, settings)
    assert built["kind"] == "librdkafka"
    assert (built["bootstrap"], built["client_id"]) == ("kafka:9092", "v2v-relay-intake")
    assert built["config"] == librdkafka_options(settings)
    assert built["config"]["sasl.username"] == "intake"
    assert built["admin"] == client_options(settings)  # the topic admin stays kafka-python's


def test_v2v_relay_producer_selects_kafka_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("V2V_RELAY_PRODUCER", "kafka-python")
    settings = _settings(tmp_path)
    assert settings.relay_producer == "kafka-python"
    built = _built(monkeypatch, settings)
    assert built["kind"] == "kafka-python"
    options = {
        k: v for k, v in built.items() if k not in ("kind", "bootstrap", "client_id", "admin")
    }
    assert options == client_options(settings)


def test_an_unknown_producer_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("V2V_RELAY_PRODUCER", "franz-go")
    with pytest.raises(SystemExit):
        _settings(tmp_path)


def test_the_librdkafka_producer_keeps_the_relays_guarantees() -> None:
    publisher = RdKafkaPublisher("127.0.0.1:1", "v2v-test-config", config={"linger.ms": 1})
    try:
        config = rdkafka_config(publisher)
    finally:
        publisher.close()
    assert (
        config.items()
        >= {
            "acks": "all",
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "partitioner": "murmur2_random",
            "message.max.bytes": 4 * 1024 * 1024,
            "message.timeout.ms": 120_000,
            "linger.ms": 1,  # configuration on top of the defaults
            "bootstrap.servers": "127.0.0.1:1",
            "client.id": "v2v-test-config",
        }.items()
    )
    assert LIBRDKAFKA_DEFAULTS["delivery.report.only.error"] is True
