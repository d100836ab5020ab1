"""Who may sign at a service: a local store of signers (site, user id, printed name, signing
roles, scrypt password hash, consecutive failures). In memory, SQLite or PostgreSQL.

A signer is locked after `MAX_FAILURES` consecutive failed re-authentications (21 CFR
11.300(d)); an administrator unlocks them with `v2v signer unlock`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import psycopg

from v2v_platform.private_files import open_private_sqlite
from v2v_platform.read_queries import for_postgres

MAX_FAILURES = 5

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS v2v_signers ("
    " site_id TEXT NOT NULL, user_id TEXT NOT NULL, printed_name TEXT NOT NULL,"
    " roles TEXT NOT NULL, password_hash TEXT NOT NULL, failures INTEGER NOT NULL,"
    " PRIMARY KEY (site_id, user_id))"
)
UPSERT = (
    "INSERT INTO v2v_signers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site_id, user_id) DO UPDATE"
    " SET printed_name = excluded.printed_name, roles = excluded.roles,"
    " password_hash = excluded.password_hash, failures = excluded.failures"
)
SELECT = (
    "SELECT site_id, user_id, printed_name, roles, password_hash, failures FROM v2v_signers"
    " WHERE site_id = ? AND user_id = ?"
)
SET_FAILURES = "UPDATE v2v_signers SET failures = ? WHERE site_id = ? AND user_id = ?"


@dataclass(frozen=True)
class Signer:
    site_id: str
    user_id: str
    printed_name: str
    roles: frozenset[str]
    password_hash: str
    failures: int = 0

    @property
    def locked(self) -> bool:
        return self.failures >= MAX_FAILURES


class SignerStore(Protocol):
    def put(self, signer: Signer) -> None: ...

    def get(self, site_id: str, user_id: str) -> Signer | None: ...

    def set_failures(self, site_id: str, user_id: str, failures: int) -> None: ...


class InMemorySignerStore:
    def __init__(self) -> None:
        self._signers: dict[tuple[str, str], Signer] = {}
        self._lock = threading.Lock()

    def put(self, signer: Signer) -> None:
        with self._lock:
            self._signers[(signer.site_id, signer.user_id)] = signer

    def get(self, site_id: str, user_id: str) -> Signer | None:
        with self._lock:
            return self._signers.get((site_id, user_id))

    def set_failures(self, site_id: str, user_id: str, failures: int) -> None:
        with self._lock:
            signer = self._signers.get((site_id, user_id))
            if signer is not None:
                self._signers[(site_id, user_id)] = replace(signer, failures=failures)


def _row(signer: Signer) -> tuple[Any, ...]:
    roles = ",".join(sorted(signer.roles))
    return (
        signer.site_id,
        signer.user_id,
        signer.printed_name,
        roles,
        signer.password_hash,
        signer.failures,
    )


def _signer(row: tuple[Any, ...] | None) -> Signer | None:
    if row is None:
        return None
    site_id, user_id, name, roles, password_hash, failures = row
    return Signer(
        site_id,
        user_id,
        name,
        frozenset(filter(None, roles.split(","))),
        password_hash,
        int(failures),
    )


class SqlSignerStore:
    """SQLite (a file next to the service's event store, private to the service: 0600, see
    `v2v_platform.private_files`) or PostgreSQL (the service's own database), one connection
    guarded by a lock, autocommit."""

    def __init__(self, connection: Any, postgres: bool) -> None:
        self._connection = connection
        self._sql = for_postgres if postgres else str
        self._lock = threading.Lock()
        with self._lock:
            self._connection.execute(SCHEMA)

    @classmethod
    def sqlite(cls, path: Path) -> SqlSignerStore:
        return cls(open_private_sqlite(path), postgres=False)

    @classmethod
    def postgres(cls, dsn: str) -> SqlSignerStore:
        return cls(psycopg.connect(dsn, autocommit=True), postgres=True)

    def put(self, signer: Signer) -> None:
        with self._lock:
            self._connection.execute(self._sql(UPSERT), _row(signer))

    def get(self, site_id: str, user_id: str) -> Signer | None:
        with self._lock:
            cursor = self._connection.execute(self._sql(SELECT), (site_id, user_id))
            return _signer(cursor.fetchone())

    def set_failures(self, site_id: str, user_id: str, failures: int) -> None:
        with self._lock:
            self._connection.execute(self._sql(SET_FAILURES), (failures, site_id, user_id))

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def open_signer_store(postgres_dsn: str | None, sqlite_path: Path | None) -> SignerStore:
    """The store a service configured with `V2V_POSTGRES_DSN` or `V2V_SQLITE_PATH` uses."""
    if postgres_dsn:
        return SqlSignerStore.postgres(postgres_dsn)
    if sqlite_path is not None:
        return SqlSignerStore.sqlite(sqlite_path.with_suffix(".signers.sqlite"))
    return InMemorySignerStore()
