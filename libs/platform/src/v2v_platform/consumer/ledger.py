"""Idempotent application of envelopes: each (aggregate id, version) is applied once.

A `Ledger` keeps, per aggregate, the highest version applied. It lives in the consumer's own
store and is written in the same transaction as the consumer's state, so "applied" and
"recorded as applied" can never disagree after a crash. Beside it, created with it and written
in the same transaction (a `GuardedLedger`): the author site pinned per aggregate stream (its
first envelope taken) and the consumer's quarantine (`v2v_platform.consumer.quarantine`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

from v2v_platform.consumer.quarantine import (
    POSTGRES_SCHEMA,
    SQLITE_SCHEMA,
    InMemoryQuarantine,
    Quarantine,
    SqlQuarantine,
)
from v2v_platform.read_queries import for_postgres


class Ledger(Protocol):
    def last_versions(self, aggregate_ids: Collection[str]) -> dict[str, int]: ...
    def record(self, versions: Mapping[str, int]) -> None: ...


class GuardedLedger(Ledger, Protocol):
    """A ledger with the stream authors and the quarantine of the same consumer."""

    def authors(self, aggregate_ids: Collection[str]) -> dict[str, str]: ...
    def pin_authors(self, authors: Mapping[str, str]) -> None:
        """Record the author site of streams that have none yet (a pinned one never changes)."""
        ...

    @property
    def quarantine(self) -> Quarantine: ...


@dataclass
class InMemoryLedger:
    """For unit tests only."""

    versions: dict[str, int] = field(default_factory=dict)
    pinned: dict[str, str] = field(default_factory=dict)
    quarantine: InMemoryQuarantine = field(default_factory=InMemoryQuarantine)

    def last_versions(self, aggregate_ids: Collection[str]) -> dict[str, int]:
        return {a: self.versions[a] for a in aggregate_ids if a in self.versions}

    def record(self, versions: Mapping[str, int]) -> None:
        self.versions.update(versions)

    def authors(self, aggregate_ids: Collection[str]) -> dict[str, str]:
        return {a: self.pinned[a] for a in aggregate_ids if a in self.pinned}

    def pin_authors(self, authors: Mapping[str, str]) -> None:
        for aggregate_id, site_id in authors.items():
            self.pinned.setdefault(aggregate_id, site_id)


_PG_LEDGER = """
CREATE TABLE IF NOT EXISTS v2v_consumer_ledger (
    consumer text NOT NULL,
    aggregate_id text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (consumer, aggregate_id)
)
"""
_AUTHORS = (
    "CREATE TABLE IF NOT EXISTS v2v_consumer_authors (consumer TEXT NOT NULL,"
    " aggregate_id TEXT NOT NULL, site_id TEXT NOT NULL, PRIMARY KEY (consumer, aggregate_id))"
)
_PIN_AUTHOR = (
    "INSERT INTO v2v_consumer_authors (consumer, aggregate_id, site_id) VALUES (?, ?, ?)"
    " ON CONFLICT (consumer, aggregate_id) DO NOTHING"
)


class PostgresLedger:
    """Ledger rows written through the caller's open transaction (cursor)."""

    def __init__(self, cursor: psycopg.Cursor[Any], consumer: str) -> None:
        self._cursor = cursor
        self._consumer = consumer

    @staticmethod
    def create_table(conn: psycopg.Connection[Any]) -> None:
        """The ledger's tables: versions, stream authors and the quarantine."""
        for statement in (_PG_LEDGER, _AUTHORS, *POSTGRES_SCHEMA):
            conn.execute(statement)

    @property
    def quarantine(self) -> Quarantine:
        return SqlQuarantine.postgres(self._cursor, self._consumer)

    def authors(self, aggregate_ids: Collection[str]) -> dict[str, str]:
        self._cursor.execute(
            "SELECT aggregate_id, site_id FROM v2v_consumer_authors"
            " WHERE consumer = %s AND aggregate_id = ANY(%s)",
            (self._consumer, list(aggregate_ids)),
        )
        return {row[0]: str(row[1]) for row in self._cursor.fetchall()}

    def pin_authors(self, authors: Mapping[str, str]) -> None:
        self._cursor.executemany(
            for_postgres(_PIN_AUTHOR), [(self._consumer, a, s) for a, s in authors.items()]
        )

    def last_versions(self, aggregate_ids: Collection[str]) -> dict[str, int]:
        self._cursor.execute(
            "SELECT aggregate_id, version FROM v2v_consumer_ledger"
            " WHERE consumer = %s AND aggregate_id = ANY(%s)",
            (self._consumer, list(aggregate_ids)),
        )
        return {row[0]: int(row[1]) for row in self._cursor.fetchall()}

    def record(self, versions: Mapping[str, int]) -> None:
        self._cursor.executemany(
            "INSERT INTO v2v_consumer_ledger (consumer, aggregate_id, version) VALUES (%s, %s, %s)"
            " ON CONFLICT (consumer, aggregate_id) DO UPDATE SET version = EXCLUDED.version",
            [(self._consumer, a, v) for a, v in versions.items()],
        )


@contextmanager
def postgres_transaction(
    conn: psycopg.Connection[Any], consumer: str
) -> Iterator[tuple[psycopg.Cursor[Any], PostgresLedger]]:
    """One transaction holding the consumer's writes and its ledger rows."""
    with conn.transaction(), conn.cursor() as cursor:
        yield cursor, PostgresLedger(cursor, consumer)


class SqliteLedger:
    def __init__(self, conn: sqlite3.Connection, consumer: str) -> None:
        self._conn = conn
        self._consumer = consumer
        conn.execute(
            "CREATE TABLE IF NOT EXISTS v2v_consumer_ledger (consumer TEXT NOT NULL,"
            " aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,"
            " PRIMARY KEY (consumer, aggregate_id))"
        )
        for statement in (_AUTHORS, *SQLITE_SCHEMA):
            conn.execute(statement)

    @classmethod
    def open(cls, path: Path, consumer: str) -> SqliteLedger:
        return cls(sqlite3.connect(path, isolation_level=None), consumer)

    def last_versions(self, aggregate_ids: Collection[str]) -> dict[str, int]:
        found = {}
        for aggregate_id in aggregate_ids:
            row = self._conn.execute(
                "SELECT version FROM v2v_consumer_ledger WHERE consumer = ? AND aggregate_id = ?",
                (self._consumer, aggregate_id),
            ).fetchone()
            if row:
                found[aggregate_id] = int(row[0])
        return found

    def record(self, versions: Mapping[str, int]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO v2v_consumer_ledger VALUES (?, ?, ?)",
            [(self._consumer, a, v) for a, v in versions.items()],
        )

    @property
    def quarantine(self) -> Quarantine:
        return SqlQuarantine(self._conn, self._consumer)

    def authors(self, aggregate_ids: Collection[str]) -> dict[str, str]:
        found = {}
        for aggregate_id in aggregate_ids:
            row = self._conn.execute(
                "SELECT site_id FROM v2v_consumer_authors WHERE consumer = ? AND aggregate_id = ?",
                (self._consumer, aggregate_id),
            ).fetchone()
            if row:
                found[aggregate_id] = str(row[0])
        return found

    def pin_authors(self, authors: Mapping[str, str]) -> None:
        self._conn.executemany(_PIN_AUTHOR, [(self._consumer, a, s) for a, s in authors.items()])


class PostgresConsumerStore:
    """A consumer's state in PostgreSQL: `transaction()` yields (cursor, ledger) of one txn."""

    def __init__(self, conn: psycopg.Connection[Any], consumer: str) -> None:
        self._conn = conn
        self._consumer = consumer
        PostgresLedger.create_table(conn)

    @contextmanager
    def transaction(self) -> Iterator[tuple[psycopg.Cursor[Any], GuardedLedger]]:
        with postgres_transaction(self._conn, self._consumer) as pair:
            yield pair


class SqliteConsumerStore:
    """A consumer's state in SQLite: `transaction()` yields (connection, ledger) of one txn."""

    def __init__(self, path: Path, consumer: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._ledger = SqliteLedger(self._conn, consumer)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[tuple[sqlite3.Connection, GuardedLedger]]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn, self._ledger
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
