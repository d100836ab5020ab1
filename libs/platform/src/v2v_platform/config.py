"""Settings from environment variables, validated when a process starts.

A missing or malformed variable stops the process with a message naming the variable,
never a stack trace.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from psycopg.conninfo import conninfo_to_dict
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
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


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


def _protocol(info: ValidationInfo) -> str | None:
    """V2V_KAFKA_SECURITY_PROTOCOL as validated (None when it was itself invalid)."""
    protocol = info.data.get("kafka_security_protocol")
    return str(protocol) if protocol is not None else None


def _needed_by(info: ValidationInfo, protocols: frozenset[str], value: object) -> bool:
    """Whether the protocol needs this setting; refuses one set for a protocol that would
    ignore it (a TLS file with PLAINTEXT is a deployment mistake, not a preference)."""
    protocol = _protocol(info)
    if protocol is None:
        return False
    if protocol not in protocols and value is not None:
        raise ValueError(
            f"V2V_KAFKA_SECURITY_PROTOCOL is {protocol}, which does not use it;"
            f" set the protocol to {' or '.join(sorted(protocols))} or unset this"
        )
    return protocol in protocols


def _readable_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError("no such file")
    try:
        with value.open("rb"):
            pass
    except OSError as error:
        raise ValueError(f"cannot read it: {error.strerror}") from None
    return value


class KafkaSecuritySettings(V2VSettings):
    """How every Kafka client of a process authenticates and encrypts (V2V_KAFKA_*).

    PLAINTEXT by default (the local broker on loopback). SSL: TLS with the broker's CA
    (V2V_KAFKA_SSL_CAFILE), optionally a client certificate (mTLS: V2V_KAFKA_SSL_CERTFILE and
    V2V_KAFKA_SSL_KEYFILE). SASL_SSL / SASL_PLAINTEXT: SASL with V2V_KAFKA_SASL_MECHANISM,
    V2V_KAFKA_SASL_USERNAME and V2V_KAFKA_SASL_PASSWORD or V2V_KAFKA_SASL_PASSWORD_FILE.
    `v2v_platform.kafka_security.client_options` turns them into kafka-python options.
    """

    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_ssl_cafile: Path | None = Field(default=None, validate_default=True)
    kafka_ssl_certfile: Path | None = Field(default=None, validate_default=True)
    kafka_ssl_keyfile: Path | None = Field(default=None, validate_default=True)
    kafka_ssl_check_hostname: bool = True
    kafka_sasl_mechanism: SaslMechanism | None = Field(default=None, validate_default=True)
    kafka_sasl_username: str | None = Field(default=None, validate_default=True)
    kafka_sasl_password: SecretStr | None = Field(default=None, validate_default=True)
    kafka_sasl_password_file: Path | None = Field(default=None, validate_default=True)

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_sasl_password_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _ca_for_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if _needed_by(info, TLS_PROTOCOLS, value) and value is None:
            raise ValueError(
                f"required with V2V_KAFKA_SECURITY_PROTOCOL={_protocol(info)}: the CA"
                " certificate (PEM) that signed the brokers' certificates"
            )
        return _readable_file(value) if value is not None else None

    @field_validator("kafka_ssl_certfile")
    @classmethod
    def _client_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        _needed_by(info, TLS_PROTOCOLS, value)
        return _readable_file(value) if value is not None else None

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _client_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        _needed_by(info, TLS_PROTOCOLS, value)
        has_certificate = info.data.get("kafka_ssl_certfile") is not None
        if (value is None) == has_certificate and "kafka_ssl_certfile" in info.data:
            raise ValueError("set V2V_KAFKA_SSL_CERTFILE and V2V_KAFKA_SSL_KEYFILE together")
        return _readable_file(value) if value is not None else None

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_username")
    @classmethod
    def _sasl_identity(cls, value: str | None, info: ValidationInfo) -> str | None:
        if _needed_by(info, SASL_PROTOCOLS, value) and not value:
            raise ValueError(f"required with V2V_KAFKA_SECURITY_PROTOCOL={_protocol(info)}")
        return value

    @field_validator("kafka_sasl_password")
    @classmethod
    def _sasl_password(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        _needed_by(info, SASL_PROTOCOLS, value)
        return value

    @field_validator("kafka_sasl_password_file")
    @classmethod
    def _sasl_password_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        needed = _needed_by(info, SASL_PROTOCOLS, value)
        if "kafka_sasl_password" not in info.data:
            return value  # the password itself was refused (and named)
        given = info.data["kafka_sasl_password"] is not None
        if needed and given == (value is not None):
            raise ValueError("set V2V_KAFKA_SASL_PASSWORD or V2V_KAFKA_SASL_PASSWORD_FILE (one)")
        if value is not None:
            _readable_file(value)
            if not value.read_text().strip():
                raise ValueError("the file is empty")
        return value

    def kafka_sasl_secret(self) -> str | None:
        """The SASL password: V2V_KAFKA_SASL_PASSWORD, else the file's content (stripped)."""
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password.get_secret_value()
        if self.kafka_sasl_password_file is not None:
            return self.kafka_sasl_password_file.read_text().strip()
        return None


class KafkaSettings(KafkaSecuritySettings):
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
CLOCK_SKEW = timedelta(minutes=5)
"""How far a client's clock may run ahead of the server's before a time counts as future."""
SkewSeconds = Annotated[int, between(0, 3600, "seconds")]
WindowHours = Annotated[int, between(1, 24 * 14, "hours")]
"""A time window in hours: 1 hour to 14 days."""
CheckpointSeconds = Annotated[float, Field(gt=0, le=86400)]
"""How often (at most) a relay publishes a signed checkpoint when heads changed: up to a day."""


class SiteServiceSettings(KafkaSecuritySettings):
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
    clock_skew_seconds: SkewSeconds = int(CLOCK_SKEW.total_seconds())
    """V2V_CLOCK_SKEW_SECONDS: client times further ahead than this are refused."""
    stall_after_s: StallSeconds = 60.0
    """V2V_STALL_AFTER_S: a relay or consumer without progress this long makes the service
    unhealthy (NOT_SERVING, /ready 503)."""

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.clock_skew_seconds)

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
    checkpoint_interval_s: CheckpointSeconds = 60.0
    """V2V_CHECKPOINT_INTERVAL_S: the relay publishes a signed checkpoint of its stream heads
    at most this often when they changed, and once when it stops (issue 15)."""

    @property
    def signing_key(self) -> Path:
        return self.signing_key_file or self.pki_dir / "sites" / self.site_id / "signing.key"
