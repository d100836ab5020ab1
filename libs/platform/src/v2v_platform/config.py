"""Settings from environment variables, validated when a process starts.

A missing or malformed variable stops the process with a message naming the variable,
never a stack trace.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from v2v_platform.auth.identity import parse_site_id
from v2v_platform.envelope.headers import CONTEXTS
from v2v_platform.private_files import private_directory, private_file

ENV_PREFIX = "V2V_"

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class V2VSettings(BaseSettings):
    """Base for every process's settings: variables are named V2V_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)


class ConfigurationError(SystemExit):
    """Raised (as an exit with status 2) when the environment is not a valid configuration."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(2)

    def __str__(self) -> str:
        return "configuration error:\n" + "\n".join(f"  - {p}" for p in self.problems)


def _describe(error: dict[str, Any]) -> str:
    location = "_".join(str(part) for part in error.get("loc", ()))
    variable = f"{ENV_PREFIX}{location}".upper()
    if error.get("type") == "missing":
        return f"{variable} is not set"
    return f"{variable}: {error.get('msg', 'invalid value')} (got {error.get('input')!r})"


def load_settings(settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
    """Read and validate settings; raise ConfigurationError naming each bad variable."""
    try:
        return settings_class(**overrides)
    except ValidationError as error:
        raise ConfigurationError([_describe(dict(e)) for e in error.errors()]) from None


def load_or_exit(settings_class: type[SettingsT]) -> SettingsT:
    """For process entry points: print the problems to stderr and exit 2."""
    try:
        return load_settings(settings_class)
    except ConfigurationError as error:
        print(str(error), file=sys.stderr)
        raise


class EventStoreSettings(BaseModel):
    """Where a service's eventsourcing event store lives: PostgreSQL DSN or a SQLite file."""

    postgres_dsn: str | None = None
    sqlite_path: Path | None = None

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing library's own environment for this store."""
        if self.postgres_dsn:
            parts = conninfo_to_dict(self.postgres_dsn)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": str(parts.get("dbname", "")),
                "POSTGRES_HOST": str(parts.get("host", "127.0.0.1")),
                "POSTGRES_PORT": str(parts.get("port", "5432")),
                "POSTGRES_USER": str(parts.get("user", "")),
                "POSTGRES_PASSWORD": str(parts.get("password", "")),
            }
        if self.sqlite_path:
            private_directory(self.sqlite_path.parent)
            private_file(self.sqlite_path)  # SQLite gives its -wal/-shm files the same mode
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
            }
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def validate_context(value: str) -> str:
    if value not in CONTEXTS:
        raise ValueError(f"must be one of {', '.join(CONTEXTS)}")
    return value


class KafkaSettings(V2VSettings):
    kafka_bootstrap: str
    topic_partitions: int = 6
    topic_replication_factor: int = 1

    @field_validator("kafka_bootstrap")
    @classmethod
    def _has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("expected host:port[,host:port...]")
        return value


def between(low: int, high: int, unit: str) -> AfterValidator:
    """A field check: `Annotated[int, between(1, 180, "minutes")]`."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high} {unit}")
        return value

    return AfterValidator(check)


SiteId = Annotated[str, AfterValidator(parse_site_id)]
StallSeconds = Annotated[float, Field(gt=0, le=3600)]
WindowHours = Annotated[int, between(1, 24 * 14, "hours")]
"""A time window in hours: 1 hour to 14 days."""


class SiteServiceSettings(V2VSettings):
    """What every service process at a site reads: its site, PKI, event store and ports.

    A service derives from it, adds its own fields and gives `grpc_address` and `http_port`
    its own defaults.
    """

    site_id: SiteId
    pki_dir: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    kafka_bootstrap: str | None = None
    grpc_address: str
    http_host: str = "127.0.0.1"
    http_port: int
    span_exporter: str = "none"
    stall_after_s: StallSeconds = 60.0
    """V2V_STALL_AFTER_S: a relay or consumer without progress this long makes the service
    unhealthy (NOT_SERVING, /ready 503)."""

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

    def side_sqlite_path(self, suffix: str) -> Path | None:
        """A SQLite file next to the event store (a projection's tables, tokens)."""
        if self.sqlite_path is None:
            return None
        return self.sqlite_path.with_suffix(f".{suffix}.sqlite")


class PublishingServiceSettings(SiteServiceSettings):
    """A service whose outbox relay signs and publishes its events to Kafka."""

    signing_key_file: Path | None = None
    topic_partitions: int = 6
    topic_replication_factor: int = 1

    @property
    def signing_key(self) -> Path:
        return self.signing_key_file or self.pki_dir / "sites" / self.site_id / "signing.key"
