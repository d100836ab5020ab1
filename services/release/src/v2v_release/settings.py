"""The release service's settings (environment variables V2V_*).

V2V_RELEASE_SPECS_FILE names a JSON file of extra specification versions (format in
`v2v_release.spec_file`); it is checked at start-up, so a bad file stops the service.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from v2v_platform.auth.identity import parse_site_id
from v2v_platform.config import EventStoreSettings, V2VSettings
from v2v_release.domain.specification import SpecificationCatalog
from v2v_release.spec_file import load_catalog


class ReleaseSettings(V2VSettings):
    site_id: str
    pki_dir: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    kafka_bootstrap: str | None = None
    signing_key_file: Path | None = None
    grpc_address: str = "127.0.0.1:50064"
    http_host: str = "127.0.0.1"
    http_port: int = 8064
    release_specs_file: Path | None = None
    topic_partitions: int = 6
    topic_replication_factor: int = 1
    span_exporter: str = "none"

    @field_validator("site_id")
    @classmethod
    def _site(cls, value: str) -> str:
        return parse_site_id(value)

    @field_validator("release_specs_file")
    @classmethod
    def _specs(cls, value: Path | None) -> Path | None:
        load_catalog(value)  # raises a ValueError naming the problem
        return value

    def specifications(self) -> SpecificationCatalog:
        return load_catalog(self.release_specs_file)

    @property
    def event_store(self) -> EventStoreSettings:
        return EventStoreSettings(postgres_dsn=self.postgres_dsn, sqlite_path=self.sqlite_path)

    @property
    def signing_key(self) -> Path:
        return self.signing_key_file or self.pki_dir / "sites" / self.site_id / "signing.key"

    def side_sqlite_path(self, suffix: str) -> Path | None:
        """A SQLite file next to the event store (the batch facts projection)."""
        if self.sqlite_path is None:
            return None
        return self.sqlite_path.with_suffix(f".{suffix}.sqlite")
