"""The settings every service shares: site, event store, side files, signing key, ranges."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from v2v_platform.config import (
    ConfigurationError,
    PublishingServiceSettings,
    SiteServiceSettings,
    WindowHours,
    between,
    load_settings,
)


class Site(SiteServiceSettings):
    grpc_address: str = "127.0.0.1:50060"
    http_port: int = 8060


class Publishing(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:50060"
    http_port: int = 8060
    window_hours: WindowHours = 48
    thaw_minutes: Annotated[int, between(1, 180, "minutes")] = 30


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SITE_ID", "PKI_DIR", "POSTGRES_DSN", "SQLITE_PATH", "SIGNING_KEY_FILE"):
        monkeypatch.delenv(f"V2V_{name}", raising=False)


def test_service_defaults_and_its_own_ports(tmp_path: Path) -> None:
    settings = load_settings(Site, site_id="HOSP-A", pki_dir=tmp_path)
    assert (settings.grpc_address, settings.http_host, settings.http_port) == (
        "127.0.0.1:50060",
        "127.0.0.1",
        8060,
    )
    assert (settings.kafka_bootstrap, settings.span_exporter) == (None, "none")
    assert settings.event_store.eventsourcing_env() == {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    assert settings.side_sqlite_path("facts") is None


def test_site_id_and_missing_variables_are_named() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(Site, site_id="hosp a")
    assert raised.value.problems[0].startswith("V2V_SITE_ID: Value error, site id 'hosp a'")
    assert "V2V_PKI_DIR is not set" in raised.value.problems


def test_sqlite_registers_and_side_files_sit_next_to_the_event_store(tmp_path: Path) -> None:
    settings = load_settings(
        Site, site_id="HOSP-A", pki_dir=tmp_path, sqlite_path=tmp_path / "s.db"
    )
    assert settings.registers_env() == {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "s.registers.sqlite"),
    }
    assert settings.side_sqlite_path("unit-facts") == tmp_path / "s.unit-facts.sqlite"


def test_postgres_registers_share_the_database(tmp_path: Path) -> None:
    dsn = "postgresql://u:p@127.0.0.1:5433/db"
    settings = load_settings(
        Site, site_id="HOSP-A", pki_dir=tmp_path, postgres_dsn=dsn, sqlite_path=tmp_path / "s.db"
    )
    assert settings.registers_env() == settings.event_store.eventsourcing_env()
    assert settings.registers_env()["POSTGRES_DBNAME"] == "db"


def test_signing_key_defaults_to_the_site_key_in_the_pki(tmp_path: Path) -> None:
    settings = load_settings(Publishing, site_id="GMP-B", pki_dir=tmp_path)
    assert settings.signing_key == tmp_path / "sites" / "GMP-B" / "signing.key"
    assert (settings.topic_partitions, settings.topic_replication_factor) == (6, 1)
    chosen = load_settings(
        Publishing, site_id="GMP-B", pki_dir=tmp_path, signing_key_file=tmp_path / "k"
    )
    assert chosen.signing_key == tmp_path / "k"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window_hours", 0, "V2V_WINDOW_HOURS: Value error, must be between 1 and 336 hours"),
        ("window_hours", 337, "V2V_WINDOW_HOURS: Value error, must be between 1 and 336 hours"),
        ("thaw_minutes", 181, "V2V_THAW_MINUTES: Value error, must be between 1 and 180 minutes"),
    ],
)
def test_ranges_are_checked(tmp_path: Path, field: str, value: int, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(Publishing, site_id="GMP-B", pki_dir=tmp_path, **{field: value})
    assert raised.value.problems == [f"{message} (got {value})"]


def test_range_bounds_are_allowed(tmp_path: Path) -> None:
    settings = load_settings(
        Publishing, site_id="GMP-B", pki_dir=tmp_path, window_hours=336, thaw_minutes=1
    )
    assert (settings.window_hours, settings.thaw_minutes) == (336, 1)
