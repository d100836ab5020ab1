"""Where each service keeps its event store: a SQLite file under the data directory (the
default), or its own PostgreSQL database next to the one `V2V_POSTGRES_DSN` names (created
when absent, never dropped here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def database_name(prefix: str, service: str) -> str:
    """`<prefix>_<service>` in lower case with only [a-z0-9_] (e.g. v2v_intake_hosp_a)."""
    name = re.sub(r"[^a-z0-9_]+", "_", f"{prefix}_{service}".lower()).strip("_")
    if len(name) > 63:
        raise ValueError(f"database name {name!r} is longer than PostgreSQL's 63 characters")
    return name


@dataclass
class Stores:
    """`data_dir` always holds logs and state; `postgres_dsn` moves the event stores."""

    data_dir: Path
    postgres_dsn: str | None = None

    def env_for(self, service: str) -> dict[str, str]:
        """The V2V_* store settings of one service (e.g. `release-GMP-1`)."""
        if self.postgres_dsn:
            return {"V2V_POSTGRES_DSN": self.ensure_database(service)}
        path = self.data_dir / "stores" / f"{service}.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        return {"V2V_SQLITE_PATH": str(path)}

    def database_for(self, service: str) -> str:
        assert self.postgres_dsn is not None
        server = conninfo_to_dict(self.postgres_dsn)
        return database_name(str(server.get("dbname") or "v2v"), service)

    def ensure_database(self, service: str) -> str:
        assert self.postgres_dsn is not None
        name = self.database_for(service)
        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return make_conninfo(self.postgres_dsn, dbname=name)

    def drop_databases(self, services: list[str]) -> list[str]:
        """Drop the services' databases (those that exist); their names."""
        if not self.postgres_dsn:
            return []
        dropped = []
        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            for name in [self.database_for(service) for service in services]:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if found.fetchone() is not None:
                    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                    conn.execute(drop)
                    dropped.append(name)
        return dropped
