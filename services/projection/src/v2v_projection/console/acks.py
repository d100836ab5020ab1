"""Alert acknowledgements taken in the console: who (site) acknowledged which alert of which
chain, when, with an optional note.

An alert is named by (COI, kind, at, event_id): the alert's kind, its clinical time and the
event that raised it, as the chain view lists it (the derivation decides the alerts; an
acknowledgement does not change them, it is the console's own record beside them).

Acknowledging is idempotent: the FIRST acknowledgement of an alert stands (its site, time
and note); acknowledging it again changes nothing and answers the stored one.

Acknowledgements are stored by the replica that took them: they are not events and are not
on Kafka, so another projection replica (its own store) does not know them. A deployment with
several replicas must give them one PostgreSQL database for acknowledgements (the
`V2V_POSTGRES_DSN` of a shared database) or route the console to one replica.

Stores: PostgreSQL (`console_acks`, created IF NOT EXISTS, in the projection's database),
SQLite (a file beside the projection's: `<sqlite_path>.acks.sqlite`, see `ack_path`), and an
in-memory one for unit tests.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg

from v2v_platform.read_queries import for_postgres

AlertRef = tuple[str, str, str, str]
"""(coi, alert kind, alert at (iso), alert event_id)."""

_CHUNK = 500
_CREATE = """CREATE TABLE IF NOT EXISTS console_acks (
    coi {text} NOT NULL,
    kind {text} NOT NULL,
    alert_at {text} NOT NULL,
    event_id {text} NOT NULL,
    site_id {text} NOT NULL,
    acknowledged_at {text} NOT NULL,
    note {text} NOT NULL,
    PRIMARY KEY (coi, kind, alert_at, event_id))"""
_INSERT = (
    "INSERT INTO console_acks (coi, kind, alert_at, event_id, site_id, acknowledged_at, note)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (coi, kind, alert_at, event_id) DO NOTHING"
)
_SELECT = (
    "SELECT coi, kind, alert_at, event_id, site_id, acknowledged_at, note FROM console_acks"
    " WHERE coi IN ({marks})"
)
_SELECT_ONE = (
    "SELECT coi, kind, alert_at, event_id, site_id, acknowledged_at, note FROM console_acks"
    " WHERE coi = ? AND kind = ? AND alert_at = ? AND event_id = ?"
)


@dataclass(frozen=True)
class Ack:
    coi: str
    kind: str
    at: str
    event_id: str
    site_id: str
    acknowledged_at: str
    note: str = ""

    @property
    def ref(self) -> AlertRef:
        return (self.coi, self.kind, self.at, self.event_id)


class AckStore(Protocol):
    def acknowledge(self, ack: Ack) -> Ack:
        """Store `ack` unless its alert is acknowledged already; the acknowledgement that
        stands (the first) is returned."""
        ...

    def of_chains(self, cois: Iterable[str]) -> dict[AlertRef, Ack]:
        """The acknowledgements of these chains' alerts."""
        ...

    def close(self) -> None: ...


def ack_path(sqlite_path: Path) -> Path:
    """The SQLite file of the acknowledgements beside the projection's own file."""
    return sqlite_path.with_name(sqlite_path.name + ".acks.sqlite")


class InMemoryAckStore:
    """For unit tests."""

    def __init__(self) -> None:
        self._acks: dict[AlertRef, Ack] = {}
        self._lock = threading.Lock()

    def acknowledge(self, ack: Ack) -> Ack:
        with self._lock:
            return self._acks.setdefault(ack.ref, ack)

    def of_chains(self, cois: Iterable[str]) -> dict[AlertRef, Ack]:
        wanted = set(cois)
        with self._lock:
            return {ref: ack for ref, ack in self._acks.items() if ref[0] in wanted}

    def close(self) -> None:
        pass


def _rows_to_acks(rows: Iterable[tuple[str, ...]]) -> dict[AlertRef, Ack]:
    acks = (Ack(*(str(value) for value in row)) for row in rows)
    return {ack.ref: ack for ack in acks}


def _chunks(cois: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(set(cois))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


class SqliteAckStore:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_CREATE.format(text="TEXT"))

    def acknowledge(self, ack: Ack) -> Ack:
        with self._lock:
            self._conn.execute(_INSERT, (*ack.ref, ack.site_id, ack.acknowledged_at, ack.note))
            row = self._conn.execute(_SELECT_ONE, ack.ref).fetchone()
        return Ack(*(str(value) for value in row))

    def of_chains(self, cois: Iterable[str]) -> dict[AlertRef, Ack]:
        found: dict[AlertRef, Ack] = {}
        with self._lock:
            for chunk in _chunks(cois):
                query = _SELECT.format(marks=", ".join("?" * len(chunk)))
                found.update(_rows_to_acks(self._conn.execute(query, chunk).fetchall()))
        return found

    def close(self) -> None:
        self._conn.close()


class PostgresAckStore:
    def __init__(self, dsn: str) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._lock = threading.Lock()
        self._conn.execute(_CREATE.format(text="text"))

    def acknowledge(self, ack: Ack) -> Ack:
        with self._lock:
            self._conn.execute(
                for_postgres(_INSERT), (*ack.ref, ack.site_id, ack.acknowledged_at, ack.note)
            )
            row = self._conn.execute(for_postgres(_SELECT_ONE), ack.ref).fetchone()
        assert row is not None
        return Ack(*(str(value) for value in row))

    def of_chains(self, cois: Iterable[str]) -> dict[AlertRef, Ack]:
        found: dict[AlertRef, Ack] = {}
        with self._lock:
            for chunk in _chunks(cois):
                query = for_postgres(_SELECT.format(marks=", ".join("?" * len(chunk))))
                found.update(_rows_to_acks(self._conn.execute(query, chunk).fetchall()))
        return found

    def close(self) -> None:
        self._conn.close()


def open_ack_store(postgres_dsn: str | None, sqlite_path: Path | None) -> AckStore:
    """Chosen like the projection's store (`store.open_store`): PostgreSQL when a DSN is set
    (the same database, table `console_acks`), else a SQLite file beside the projection's."""
    if postgres_dsn:
        return PostgresAckStore(postgres_dsn)
    if sqlite_path is not None:
        if str(sqlite_path) == ":memory:":
            return SqliteAckStore(sqlite_path)
        return SqliteAckStore(ack_path(sqlite_path))
    raise ValueError("set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: the console's acks need a store")
