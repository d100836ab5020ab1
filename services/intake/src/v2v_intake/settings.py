"""Intake settings from V2V_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from v2v_platform.auth.identity import parse_site_id
from v2v_platform.config import EventStoreSettings, V2VSettings
from v2v_platform.ids.coi import CoiIssuer


class IntakeSettings(V2VSettings):
    site_id: str
    fin: str
    pki_dir: Path
    manufacturing_target: str
    manufacturing_timeout_s: float = 5.0
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    grpc_address: str = "127.0.0.1:50061"
    http_host: str = "127.0.0.1"
    http_port: int = 8061
    kafka_bootstrap: str | None = None
    span_exporter: str = "none"

    @field_validator("site_id")
    @classmethod
    def _site(cls, value: str) -> str:
        return parse_site_id(value)

    @field_validator("fin")
    @classmethod
    def _fin(cls, value: str) -> str:
        CoiIssuer(value, 0)
        return value

    @property
    def event_store(self) -> EventStoreSettings:
        return EventStoreSettings(postgres_dsn=self.postgres_dsn, sqlite_path=self.sqlite_path)

    def registers_env(self) -> dict[str, str]:
        """Registers share a PostgreSQL database (own tables) but need their own SQLite file."""
        if self.sqlite_path and not self.postgres_dsn:
            path = self.sqlite_path.with_suffix(".registers.sqlite")
            return EventStoreSettings(sqlite_path=path).eventsourcing_env()
        return self.event_store.eventsourcing_env()
