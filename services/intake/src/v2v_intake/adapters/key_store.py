"""Per-COI data key stores: in memory (unit tests), SQLite (embedded) or PostgreSQL.

Keys live apart from the event store (which holds sealed details only); deleting a key's row
is the crypto-shred.

SQLite: the file, its WAL and shared-memory companions are 0600 in directories created 0700
(`v2v_platform.private_files`); with secure_delete on, the deleted row is overwritten with
zeros, and a checkpoint that truncates the WAL right after the delete leaves no copy of the
key in any file while the service runs.

PostgreSQL: deleting the row is all the database lets a client do. The row's bytes stay in
the table's heap pages until VACUUM reclaims them and a later write reuses the space, and in
the server's WAL segments, archives and backups until those are recycled. Running VACUUM on
`intake_data_keys` after erasures, and the retention of WAL archives and backups, are the
database operator's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from v2v_intake.domain.personal_data import new_key
from v2v_platform.private_files import checkpoint_wal, open_private_sqlite


class InMemoryKeyStore:
    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get_or_create(self, coi: str) -> bytes:
        with self._lock:
            return self._keys.setdefault(coi, new_key())

    def get(self, coi: str) -> bytes | None:
        return self._keys.get(coi)

    def destroy(self, coi: str) -> None:
        with self._lock:
            self._keys.pop(coi, None)

    def close(self) -> None:
        """Nothing to close (for the composition root, like the stores below)."""


_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS intake_data_keys (coi TEXT PRIMARY KEY, key BLOB NOT NULL)"
)


class SqliteKeyStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn = open_private_sqlite(path)
        self._conn.execute(_SQLITE_SCHEMA)

    def get_or_create(self, coi: str) -> bytes:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO intake_data_keys (coi, key) VALUES (?, ?)", (coi, new_key())
            )
            return self._get(coi) or b""

    def get(self, coi: str) -> bytes | None:
        with self._lock:
            return self._get(coi)

    def _get(self, coi: str) -> bytes | None:
        row = self._conn.execute(
            "SELECT key FROM intake_data_keys WHERE coi = ?", (coi,)
        ).fetchone()
        return bytes(row[0]) if row else None

    def destroy(self, coi: str) -> None:
        """Delete the key and truncate the WAL; raises `UnsafeSqliteStore` when another
        process's reader keeps the WAL (the erasure can be repeated: it is idempotent)."""
        with self._lock:
            self._conn.execute("DELETE FROM intake_data_keys WHERE coi = ?", (coi,))
            checkpoint_wal(self._conn)

    def close(self) -> None:
        self._conn.close()


_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS intake_data_keys (coi text PRIMARY KEY, key bytea NOT NULL)"
)
_PG_GET_OR_CREATE = (
    "WITH created AS (INSERT INTO intake_data_keys (coi, key) VALUES (%s, %s)"
    " ON CONFLICT DO NOTHING RETURNING key)"
    " SELECT key FROM created UNION ALL SELECT key FROM intake_data_keys WHERE coi = %s"
)
"""One round trip: the key created, or the one the COI had (the statement's snapshot sees a
key committed before it; one committed by a concurrent insert meanwhile is read after)."""
MAX_PG_CONNECTIONS = 8


class PostgresKeyStore:
    """Keys in the service's PostgreSQL database, over up to `max_connections` connections
    (opened as needed, reused): concurrent enrolments do not queue on one connection."""

    def __init__(self, dsn: str, max_connections: int = MAX_PG_CONNECTIONS) -> None:
        self._dsn = dsn
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._open: list[psycopg.Connection[Any]] = []
        with self._connection() as conn:
            conn.execute(_PG_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = psycopg.connect(self._dsn, autocommit=True)
                with self._lock:
                    self._open.append(conn)
            try:
                yield conn
            finally:
                with self._lock:
                    if conn.closed or conn.broken:
                        self._open.remove(conn)
                        conn.close()
                    else:
                        self._idle.append(conn)

    def get_or_create(self, coi: str) -> bytes:
        with self._connection() as conn:
            row = conn.execute(_PG_GET_OR_CREATE, (coi, new_key(), coi)).fetchone()
            return bytes(row[0]) if row else (self._get(conn, coi) or b"")

    def get(self, coi: str) -> bytes | None:
        with self._connection() as conn:
            return self._get(conn, coi)

    @staticmethod
    def _get(conn: psycopg.Connection[Any], coi: str) -> bytes | None:
        row = conn.execute("SELECT key FROM intake_data_keys WHERE coi = %s", (coi,)).fetchone()
        return bytes(row[0]) if row else None

    def destroy(self, coi: str) -> None:
        with self._connection() as conn:
            conn.execute("DELETE FROM intake_data_keys WHERE coi = %s", (coi,))

    def close(self) -> None:
        with self._lock:
            connections, self._open, self._idle = self._open, [], []
        for conn in connections:
            conn.close()
