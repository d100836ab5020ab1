"""Per-COI data key stores: in memory (unit tests), SQLite (embedded) or PostgreSQL.

Keys live apart from the event store; deleting a key's row is the crypto-shred. (On
PostgreSQL, run VACUUM so the deleted row's bytes are also gone from the table files.)
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg

from v2v_intake.domain.personal_data import new_key


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
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA secure_delete=ON")
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
        with self._lock:
            self._conn.execute("DELETE FROM intake_data_keys WHERE coi = ?", (coi,))

    def close(self) -> None:
        self._conn.close()


_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS intake_data_keys (coi text PRIMARY KEY, key bytea NOT NULL)"
)


class PostgresKeyStore:
    def __init__(self, dsn: str) -> None:
        self._lock = threading.Lock()
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._conn.execute(_PG_SCHEMA)

    def get_or_create(self, coi: str) -> bytes:
        with self._lock:
            self._conn.execute(
                "INSERT INTO intake_data_keys (coi, key) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (coi, new_key()),
            )
            return self._get(coi) or b""

    def get(self, coi: str) -> bytes | None:
        with self._lock:
            return self._get(coi)

    def _get(self, coi: str) -> bytes | None:
        row = self._conn.execute(
            "SELECT key FROM intake_data_keys WHERE coi = %s", (coi,)
        ).fetchone()
        return bytes(row[0]) if row else None

    def destroy(self, coi: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM intake_data_keys WHERE coi = %s", (coi,))

    def close(self) -> None:
        self._conn.close()
