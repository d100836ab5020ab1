"""The infusion service's settings (environment variables V2V_*)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import field_validator

from v2v_infusion.domain.values import Windows
from v2v_platform.auth.identity import parse_site_id
from v2v_platform.config import EventStoreSettings, V2VSettings


class InfusionSettings(V2VSettings):
    site_id: str
    pki_dir: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    kafka_bootstrap: str | None = None
    signing_key_file: Path | None = None
    grpc_address: str = "127.0.0.1:50065"
    http_host: str = "127.0.0.1"
    http_port: int = 8065
    post_thaw_window_minutes: int = 30
    fresh_product_window_hours: int = 72
    topic_partitions: int = 6
    topic_replication_factor: int = 1
    span_exporter: str = "none"

    @field_validator("site_id")
    @classmethod
    def _site(cls, value: str) -> str:
        return parse_site_id(value)

    @field_validator("post_thaw_window_minutes")
    @classmethod
    def _post_thaw(cls, value: int) -> int:
        if not 1 <= value <= 180:
            raise ValueError("must be between 1 and 180 minutes")
        return value

    @field_validator("fresh_product_window_hours")
    @classmethod
    def _fresh(cls, value: int) -> int:
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
    def windows(self) -> Windows:
        return Windows(
            timedelta(minutes=self.post_thaw_window_minutes),
            timedelta(hours=self.fresh_product_window_hours),
        )

    @property
    def signing_key(self) -> Path:
        return self.signing_key_file or self.pki_dir / "sites" / self.site_id / "signing.key"

    @property
    def facts_sqlite_path(self) -> Path | None:
        """The projection's SQLite file, next to the event store."""
        if self.sqlite_path is None:
            return None
        return self.sqlite_path.with_suffix(".facts.sqlite")
