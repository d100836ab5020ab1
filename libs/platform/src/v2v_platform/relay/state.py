"""Where an outbox relay records how far it has published and each aggregate's chain head.

Position and chain heads advance together, atomically, only after the broker acknowledged
everything up to that position: a crash at any moment republishes (byte-identical, because
envelopes are deterministic) instead of losing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg


@dataclass(frozen=True)
class ChainHead:
    version: int
    hash: bytes


class RelayStateStore(Protocol):
    def position(self) -> int: ...
    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]: ...
    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None: ...
    def close(self) -> None: ...


class InMemoryRelayState:
    """For unit tests only: forgets everything when the process ends."""

    def __init__(self) -> None:
        self._position = 0
        self._heads: dict[str, ChainHead] = {}

    def position(self) -> int:
        return self._position

    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]:
        return {a: self._heads[a] for a in aggregate_ids if a in self._heads}

    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None:
        self._heads.update(heads)
        self._position = position

    def close(self) -> None:
        """Nothing to release."""


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS v2v_relay_position (
    relay text PRIMARY KEY,
    position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS v2v_relay_chain_head (
    relay text NOT NULL,
    aggregate_id text NOT NULL,
    version bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (relay, aggregate_id)
);
"""


class PostgresRelayState:
    """Relay state in the service's own PostgreSQL database.

    Holds a session advisory lock for its lifetime, so one relay per outbox publishes at a
    time; a second instance waits (hot standby). The lock dies with the connection.
    """

    def __init__(self, dsn: str, relay: str, wait_for_lock: bool = True) -> None:
        self._relay = relay
        self._conn = psycopg.connect(dsn, autocommit=True)
        with self._conn.transaction():
            for statement in filter(str.strip, _PG_SCHEMA.split(";")):
                self._conn.execute(statement)
        lock = "pg_advisory_lock" if wait_for_lock else "pg_try_advisory_lock"
        row = self._conn.execute(f"SELECT {lock}(hashtext(%s))", (relay,)).fetchone()
        if row is not None and row[0] is False:
            raise RuntimeError(f"another relay named {relay!r} is running")

    def position(self) -> int:
        row = self._conn.execute(
            "SELECT position FROM v2v_relay_position WHERE relay = %s", (self._relay,)
        ).fetchone()
        return int(row[0]) if row else 0

    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]:
        rows = self._conn.execute(
            "SELECT aggregate_id, version, hash FROM v2v_relay_chain_head"
            " WHERE relay = %s AND aggregate_id = ANY(%s)",
            (self._relay, list(aggregate_ids)),
        ).fetchall()
        return {r[0]: ChainHead(int(r[1]), bytes(r[2])) for r in rows}

    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO v2v_relay_chain_head (relay, aggregate_id, version, hash)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (relay, aggregate_id)"
                " DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash",
                [(self._relay, a, h.version, h.hash) for a, h in heads.items()],
            )
            cursor.execute(
                "INSERT INTO v2v_relay_position (relay, position) VALUES (%s, %s)"
                " ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position",
                (self._relay, position),
            )

    def close(self) -> None:
        self._conn.close()


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS v2v_relay_position (relay TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS v2v_relay_chain_head (
    relay TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
    hash BLOB NOT NULL, PRIMARY KEY (relay, aggregate_id));
"""


class SqliteRelayState:
    """Relay state in a SQLite file beside the service's event store (embedded default)."""

    def __init__(self, path: Path, relay: str) -> None:
        self._relay = relay
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SQLITE_SCHEMA)

    def position(self) -> int:
        row = self._conn.execute(
            "SELECT position FROM v2v_relay_position WHERE relay = ?", (self._relay,)
        ).fetchone()
        return int(row[0]) if row else 0

    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]:
        found: dict[str, ChainHead] = {}
        for aggregate_id in aggregate_ids:
            row = self._conn.execute(
                "SELECT version, hash FROM v2v_relay_chain_head"
                " WHERE relay = ? AND aggregate_id = ?",
                (self._relay, aggregate_id),
            ).fetchone()
            if row:
                found[aggregate_id] = ChainHead(int(row[0]), bytes(row[1]))
        return found

    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO v2v_relay_chain_head VALUES (?, ?, ?, ?)",
                    [(self._relay, a, h.version, h.hash) for a, h in heads.items()],
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO v2v_relay_position VALUES (?, ?)",
                    (self._relay, position),
                )
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()
