"""Settings: validated at start, every problem named by its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_platform.config import ConfigurationError, EventStoreSettings, load_settings
from v2v_platform.relay.process import BadRelaySpec, RelaySettings, load_spec


def test_missing_and_malformed_variables_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("V2V_CONTEXT", "V2V_SITE_ID", "V2V_SIGNING_KEY_FILE", "V2V_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("V2V_KAFKA_BOOTSTRAP", "localhost")
    monkeypatch.setenv("V2V_CONTEXT", "surgery")
    monkeypatch.setenv("V2V_RELAY_PAGE_SIZE", "many")
    with pytest.raises(ConfigurationError) as raised:
        load_settings(RelaySettings)
    text = str(raised.value)
    assert "V2V_SITE_ID is not set" in text
    assert "V2V_SIGNING_KEY_FILE is not set" in text
    assert "V2V_KAFKA_BOOTSTRAP: Value error, expected host:port" in text
    assert "V2V_CONTEXT: Value error, must be one of intake" in text
    assert "V2V_RELAY_PAGE_SIZE" in text
    assert raised.value.code == 2


def test_valid_environment_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "signing.key"
    key.write_text("x")
    monkeypatch.setenv("V2V_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    monkeypatch.setenv("V2V_CONTEXT", "logistics")
    monkeypatch.setenv("V2V_SITE_ID", "HOSP-A")
    monkeypatch.setenv("V2V_SIGNING_KEY_FILE", str(key))
    monkeypatch.setenv("V2V_SQLITE_PATH", str(tmp_path / "events.sqlite"))
    settings = load_settings(RelaySettings)
    assert (settings.context, settings.relay_page_size, settings.topic_partitions) == (
        "logistics",
        500,
        6,
    )


def test_event_store_env_for_postgres_sqlite_and_memory(tmp_path: Path) -> None:
    pg = EventStoreSettings(postgres_dsn="postgresql://u:p@127.0.0.1:5433/db").eventsourcing_env()
    assert pg == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "db",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5433",
        "POSTGRES_USER": "u",
        "POSTGRES_PASSWORD": "p",
    }
    sqlite = EventStoreSettings(sqlite_path=tmp_path / "d" / "es.sqlite").eventsourcing_env()
    assert sqlite["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert (tmp_path / "d").is_dir()
    assert EventStoreSettings().eventsourcing_env() == {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def test_relay_needs_a_durable_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "signing.key"
    key.write_text("x")
    for name, value in {
        "V2V_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
        "V2V_CONTEXT": "intake",
        "V2V_SITE_ID": "HOSP-A",
        "V2V_SIGNING_KEY_FILE": str(key),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("V2V_POSTGRES_DSN", raising=False)
    monkeypatch.delenv("V2V_SQLITE_PATH", raising=False)
    with pytest.raises(ConfigurationError, match="set V2V_POSTGRES_DSN or V2V_SQLITE_PATH"):
        load_settings(RelaySettings)


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("no_colon", "must look like 'package.module:NAME'"),
        ("no_such_module_v2v:SPEC", "cannot import no_such_module_v2v"),
        ("v2v_platform.testing.outbox_app:NOPE", "has no NOPE"),
        ("v2v_platform.testing.outbox_app:ChainApp", "not a RelaySpec"),
    ],
)
def test_bad_relay_spec_is_explained(reference: str, reason: str) -> None:
    with pytest.raises(BadRelaySpec, match=reason):
        load_spec(reference)
