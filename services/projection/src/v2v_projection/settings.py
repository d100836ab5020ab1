"""The projection core's settings (environment variables V2V_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from v2v_platform.auth.identity import parse_site_id
from v2v_platform.config import KafkaSecuritySettings, StallSeconds


class ProjectionSettings(KafkaSecuritySettings):
    site_id: str
    pki_dir: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    kafka_bootstrap: str | None = None
    consumer_group: str = "v2v-projection"
    grpc_address: str = "127.0.0.1:50066"
    http_host: str = "127.0.0.1"
    http_port: int = 8066
    max_poll_records: int = 5000
    verify_workers: int = 2
    """Processes that verify consumed records (0 or 1: the consumer's own thread). Two
    workers verify ~40 % faster than the consumer's thread on a 2-core machine (bench/)."""
    span_exporter: str = "none"
    stall_after_s: StallSeconds = 60.0

    @field_validator("site_id")
    @classmethod
    def _site(cls, value: str) -> str:
        return parse_site_id(value)

    @field_validator("max_poll_records")
    @classmethod
    def _poll_size(cls, value: int) -> int:
        if not 1 <= value <= 100_000:
            raise ValueError("must be between 1 and 100000")
        return value

    @field_validator("verify_workers")
    @classmethod
    def _verify_workers(cls, value: int) -> int:
        if not 0 <= value <= 64:
            raise ValueError("must be between 0 and 64")
        return value
