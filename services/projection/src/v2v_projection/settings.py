"""The projection core's settings (environment variables V2V_*).

Every replica of the projection is a full read replica (ADR 0011): its own consumer group, its
own store, ready only once caught up. `V2V_PROJECTION_REPLICA` names the replica: a
StatefulSet pod name (`v2v-projection-2`: its trailing ordinal counts), an ordinal (`2`) or a
short label (`eu-west`). Replica 0, or none (a single process, the demo), keeps the names a
projection had before replicas existed: the group `V2V_CONSUMER_GROUP` and the store as
configured. Any other replica N reads in group `<V2V_CONSUMER_GROUP>-N` into its own store: the
PostgreSQL schema `projection_replica_N` of the configured database (created on start), or the
SQLite file `<stem>-N<suffix>` beside the configured one.
"""

from __future__ import annotations

import re
from pathlib import Path

from psycopg.conninfo import make_conninfo
from pydantic import field_validator

from v2v_platform.auth.identity import parse_site_id
from v2v_platform.config import KafkaSecuritySettings, StallSeconds

_ORDINAL = re.compile(r"^(?:.*-)?(\d{1,6})$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
SCHEMA_PREFIX = "projection_replica_"


def replica_identity(value: str | None) -> str | None:
    """The replica's identity: the ordinal of a StatefulSet pod name or of a number ("0" for
    `v2v-projection-0`), else the label itself; None when unset. ValueError when neither."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if ordinal := _ORDINAL.match(text):
        return str(int(ordinal.group(1)))
    if _LABEL.match(text):
        return text
    raise ValueError(
        "a StatefulSet pod name (<name>-<ordinal>), an ordinal, or a label of 1-32 of a-z, 0-9 "
        "and '-' (not at either end)"
    )


class ProjectionSettings(KafkaSecuritySettings):
    site_id: str
    pki_dir: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    kafka_bootstrap: str | None = None
    consumer_group: str = "v2v-projection"
    """The group of replica 0 (and of a projection without replicas); replica N appends -N.
    The broker's ACLs grant the projection every group starting `v2v-projection`."""
    projection_replica: str | None = None
    """V2V_PROJECTION_REPLICA: this replica's identity (see the module docstring); the Helm
    chart sets the pod name."""
    catch_up_max_lag: int = 100
    """V2V_CATCH_UP_MAX_LAG: the replica is not ready (GET /ready 503, gRPC NOT_SERVING) until
    its lag on every partition of the topics it reads is at most this many records."""
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

    @field_validator("projection_replica")
    @classmethod
    def _replica(cls, value: str | None) -> str | None:
        return replica_identity(value)

    @field_validator("catch_up_max_lag")
    @classmethod
    def _max_lag(cls, value: int) -> int:
        if not 0 <= value <= 1_000_000:
            raise ValueError("must be between 0 and 1000000")
        return value

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

    @property
    def own_replica(self) -> str | None:
        """This replica's identity when it needs names of its own (None for replica 0)."""
        replica = self.projection_replica
        return None if replica in (None, "0") else replica

    @property
    def group_id(self) -> str:
        """This replica's consumer group: V2V_CONSUMER_GROUP, `-<replica>` for replica N."""
        replica = self.own_replica
        return self.consumer_group if replica is None else f"{self.consumer_group}-{replica}"

    @property
    def postgres_schema(self) -> str | None:
        """The PostgreSQL schema of this replica's store (None: the connection's default)."""
        replica = self.own_replica
        return None if replica is None else SCHEMA_PREFIX + replica.replace("-", "_")

    @property
    def store_dsn(self) -> str | None:
        """V2V_POSTGRES_DSN, for replica N with its schema first on the search path."""
        schema = self.postgres_schema
        if not self.postgres_dsn or schema is None:
            return self.postgres_dsn
        return make_conninfo(self.postgres_dsn, options=f"-c search_path={schema}")

    @property
    def store_sqlite_path(self) -> Path | None:
        """V2V_SQLITE_PATH, for replica N `<stem>-N<suffix>` beside it."""
        path, replica = self.sqlite_path, self.own_replica
        if path is None or replica is None:
            return path
        return path.with_name(f"{path.stem}-{replica}{path.suffix}")
