"""The logistics service's settings (environment variables V2V_*)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import field_validator

from v2v_logistics.domain.values import StabilityRules
from v2v_platform.auth.identity import parse_site_id
from v2v_platform.config import EventStoreSettings, V2VSettings


class LogisticsSettings(V2VSettings):
    site_id: str
    pki_dir: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    kafka_bootstrap: str | None = None
    signing_key_file: Path | None = None
    grpc_address: str = "127.0.0.1:50063"
    http_host: str = "127.0.0.1"
    http_port: int = 8063
    fresh_apheresis_window_hours: int = 48
    fresh_product_window_hours: int = 72
    topic_partitions: int = 6
    topic_replication_factor: int = 1
    span_exporter: str = "none"

    @field_validator("site_id")
    @classmethod
    def _site(cls, value: str) -> str:
        return parse_site_id(value)

    @field_validator("fresh_apheresis_window_hours", "fresh_product_window_hours")
    @classmethod
    def _window(cls, value: int) -> int:
        if not 1 <= value <= 24 * 14:
            raise ValueError("must be between 1 and 336 hours")
        return value

    @property
    def event_store(self) -> EventStoreSettings:
        return EventStoreSettings(postgres_dsn=self.postgres_dsn, sqlite_path=self.sqlite_path)

    def registers_env(self) -> dict[str, str]:
        """The internal registers' event store: the same PostgreSQL database (own tables) or
        their own SQLite file."""
        if self.sqlite_path and not self.postgres_dsn:
            path = self.sqlite_path.with_suffix(".registers.sqlite")
            return EventStoreSettings(sqlite_path=path).eventsourcing_env()
        return self.event_store.eventsourcing_env()

    @property
    def rules(self) -> StabilityRules:
        return StabilityRules(
            timedelta(hours=self.fresh_apheresis_window_hours),
            timedelta(hours=self.fresh_product_window_hours),
        )

    @property
    def signing_key(self) -> Path:
        return self.signing_key_file or self.pki_dir / "sites" / self.site_id / "signing.key"

    def side_sqlite_path(self, suffix: str) -> Path | None:
        """A SQLite file next to the event store (unit facts, courier tokens)."""
        if self.sqlite_path is None:
            return None
        return self.sqlite_path.with_suffix(f".{suffix}.sqlite")
