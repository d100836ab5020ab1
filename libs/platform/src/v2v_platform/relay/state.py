"""Where an outbox relay records how far it has published, each aggregate's chain head, and
its signed checkpoints (issue 15).

Position and chain heads advance together, atomically, only after the broker acknowledged
everything up to that position: a crash at any moment republishes (byte-identical, because
envelopes are deterministic) instead of losing.

Checkpoints are written ahead like the outbox: a checkpoint is prepared (its sequence and
envelope bytes stored) before it is published; once the broker acknowledged it, it is marked
done atomically: the checkpoint head becomes its sequence and hash, and the heads it carries
count as checkpointed (a head is "changed" while its version is above the version the last
checkpoint carried). A prepared checkpoint found after a crash is published again as stored,
never rebuilt. The schema only adds (CREATE TABLE / ADD COLUMN IF NOT EXISTS): a store made
before checkpoints keeps working, its heads all changed until the first checkpoint; a head
stored before the signature digest column has none (NULL), and neither do its later heads.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from v2v_platform.checkpoints.envelopes import CheckpointHead
from v2v_platform.private_files import private_file


@dataclass(frozen=True)
class ChainHead:
    """An aggregate's latest published version and envelope hash, and the running digest of
    its envelope signatures up to it (`merkle.signature_digest`): None when unknown (a head
    stored before the relay kept it; that stream's later digests stay unknown)."""

    version: int
    hash: bytes
    signatures: bytes | None = None


@dataclass(frozen=True)
class PreparedCheckpoint:
    """A checkpoint built and stored, not yet acknowledged: its sequence, its envelope's hash,
    the envelope bytes as published, and the heads it carries (aggregate id -> version)."""

    sequence: int
    hash: bytes
    envelope: bytes
    covers: Mapping[str, int]


class CheckpointStateStore(Protocol):
    """What the checkpointer reads and writes of a relay's state."""

    def position(self) -> int: ...
    def all_heads(self) -> dict[str, ChainHead]: ...
    def changed_heads(self) -> dict[str, ChainHead]: ...
    def checkpoint_head(self) -> CheckpointHead: ...
    def prepared_checkpoint(self) -> PreparedCheckpoint | None: ...
    def prepare_checkpoint(self, prepared: PreparedCheckpoint) -> None: ...
    def checkpoint_done(self, prepared: PreparedCheckpoint) -> None: ...


class RelayStateStore(CheckpointStateStore, Protocol):
    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]: ...
    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None: ...
    def close(self) -> None: ...


class CheckpointStateError(RuntimeError):
    """A checkpoint prepared or marked out of turn (a second relay on the same state)."""


def _check_prepare(head: CheckpointHead, pending: PreparedCheckpoint | None, new: int) -> None:
    if pending is not None:
        raise CheckpointStateError(
            f"checkpoint {pending.sequence} is prepared and not yet done; it is published first"
        )
    if new != head.sequence + 1:
        raise CheckpointStateError(f"checkpoint {new} does not follow checkpoint {head.sequence}")


def _chain_head(row: Sequence[Any]) -> ChainHead:
    """A chain head from (aggregate_id, version, hash, signatures)."""
    return ChainHead(int(row[1]), bytes(row[2]), None if row[3] is None else bytes(row[3]))


class InMemoryRelayState:
    """For unit tests only: forgets everything when the process ends."""

    def __init__(self) -> None:
        self._position = 0
        self._heads: dict[str, ChainHead] = {}
        self._checkpointed: dict[str, int] = {}
        self._checkpoint = CheckpointHead()
        self._prepared: PreparedCheckpoint | None = None

    def position(self) -> int:
        return self._position

    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]:
        return {a: self._heads[a] for a in aggregate_ids if a in self._heads}

    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None:
        self._heads.update(heads)
        self._position = position

    def all_heads(self) -> dict[str, ChainHead]:
        return dict(self._heads)

    def changed_heads(self) -> dict[str, ChainHead]:
        return {a: h for a, h in self._heads.items() if h.version > self._checkpointed.get(a, 0)}

    def checkpoint_head(self) -> CheckpointHead:
        return self._checkpoint

    def prepared_checkpoint(self) -> PreparedCheckpoint | None:
        return self._prepared

    def prepare_checkpoint(self, prepared: PreparedCheckpoint) -> None:
        _check_prepare(self._checkpoint, self._prepared, prepared.sequence)
        self._prepared = prepared

    def checkpoint_done(self, prepared: PreparedCheckpoint) -> None:
        if self._prepared != prepared:
            raise CheckpointStateError(f"checkpoint {prepared.sequence} is not the prepared one")
        self._checkpointed.update(prepared.covers)
        self._checkpoint = CheckpointHead(prepared.sequence, prepared.hash)
        self._prepared = None

    def close(self) -> None:
        """Nothing to release."""


class _StateReads(ABC):
    """The reads both SQL stores share, written once with `%s` placeholders; `_rows` runs
    them on the store's connection (SQLite swaps the placeholder for its own)."""

    _relay: str

    @abstractmethod
    def _rows(self, query: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
        """The rows of `query` with `parameters`, on the store's own connection."""

    def position(self) -> int:
        rows = self._rows("SELECT position FROM v2v_relay_position WHERE relay = %s", [self._relay])
        return int(rows[0][0]) if rows else 0

    def all_heads(self) -> dict[str, ChainHead]:
        return self._heads_where("")

    def changed_heads(self) -> dict[str, ChainHead]:
        return self._heads_where(" AND version > checkpointed")

    def _heads_where(self, condition: str) -> dict[str, ChainHead]:
        rows = self._rows(
            "SELECT aggregate_id, version, hash, signatures FROM v2v_relay_chain_head"
            " WHERE relay = %s" + condition,
            [self._relay],
        )
        return {r[0]: _chain_head(r) for r in rows}

    def checkpoint_head(self) -> CheckpointHead:
        rows = self._rows(
            "SELECT sequence, hash FROM v2v_relay_checkpoint WHERE relay = %s", [self._relay]
        )
        return CheckpointHead(int(rows[0][0]), bytes(rows[0][1])) if rows else CheckpointHead()

    def prepared_checkpoint(self) -> PreparedCheckpoint | None:
        rows = self._rows(
            "SELECT sequence, hash, envelope FROM v2v_relay_checkpoint_prepared WHERE relay = %s",
            [self._relay],
        )
        if not rows:
            return None
        covers = self._rows(
            "SELECT aggregate_id, version FROM v2v_relay_checkpoint_covers WHERE relay = %s",
            [self._relay],
        )
        sequence, digest, envelope = rows[0]
        return PreparedCheckpoint(
            int(sequence), bytes(digest), bytes(envelope), {a: int(v) for a, v in covers}
        )


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
CREATE TABLE IF NOT EXISTS v2v_relay_checkpoint (
    relay text PRIMARY KEY,
    sequence bigint NOT NULL,
    hash bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS v2v_relay_checkpoint_prepared (
    relay text PRIMARY KEY,
    sequence bigint NOT NULL,
    hash bytea NOT NULL,
    envelope bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS v2v_relay_checkpoint_covers (
    relay text NOT NULL,
    aggregate_id text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (relay, aggregate_id)
);
"""


class PostgresRelayState(_StateReads):
    """Relay state in the service's own PostgreSQL database.

    Holds a session advisory lock for its lifetime, so one relay per outbox publishes at a
    time; a second instance waits (hot standby). The lock dies with the connection.
    """

    def __init__(self, dsn: str, relay: str, wait_for_lock: bool = True) -> None:
        self._relay = relay
        self._conn = psycopg.connect(dsn, autocommit=True)
        lock = "pg_advisory_lock" if wait_for_lock else "pg_try_advisory_lock"
        row = self._conn.execute(f"SELECT {lock}(hashtext(%s))", (relay,)).fetchone()
        if row is not None and row[0] is False:
            self._conn.close()
            raise RuntimeError(f"another relay named {relay!r} is running")
        with self._conn.transaction():
            # serialised across relays: concurrent CREATE/ALTER IF NOT EXISTS can collide
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('v2v_relay_schema'))")
            for statement in filter(str.strip, _PG_SCHEMA.split(";")):
                self._conn.execute(statement)
            column = self._conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = 'v2v_relay_chain_head' AND column_name = 'checkpointed'"
            ).fetchone()
            if column is None:  # a store made before checkpoints (issue 15)
                self._conn.execute(
                    "ALTER TABLE v2v_relay_chain_head"
                    " ADD COLUMN IF NOT EXISTS checkpointed bigint NOT NULL DEFAULT 0"
                )
            column = self._conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = 'v2v_relay_chain_head' AND column_name = 'signatures'"
            ).fetchone()
            if column is None:  # a store made before signature digests (issue 15)
                self._conn.execute(
                    "ALTER TABLE v2v_relay_chain_head ADD COLUMN IF NOT EXISTS signatures bytea"
                )

    def _rows(self, query: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
        return list(self._conn.execute(query, parameters).fetchall())

    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]:
        rows = self._conn.execute(
            "SELECT aggregate_id, version, hash, signatures FROM v2v_relay_chain_head"
            " WHERE relay = %s AND aggregate_id = ANY(%s)",
            (self._relay, list(aggregate_ids)),
        ).fetchall()
        return {r[0]: _chain_head(r) for r in rows}

    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO v2v_relay_chain_head"
                " (relay, aggregate_id, version, hash, signatures)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (relay, aggregate_id)"
                " DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash,"
                " signatures = EXCLUDED.signatures",
                [(self._relay, a, h.version, h.hash, h.signatures) for a, h in heads.items()],
            )
            cursor.execute(
                "INSERT INTO v2v_relay_position (relay, position) VALUES (%s, %s)"
                " ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position",
                (self._relay, position),
            )

    def prepare_checkpoint(self, prepared: PreparedCheckpoint) -> None:
        _check_prepare(self.checkpoint_head(), self.prepared_checkpoint(), prepared.sequence)
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.execute(
                "DELETE FROM v2v_relay_checkpoint_covers WHERE relay = %s", (self._relay,)
            )
            cursor.executemany(
                "INSERT INTO v2v_relay_checkpoint_covers (relay, aggregate_id, version)"
                " VALUES (%s, %s, %s)",
                [(self._relay, a, v) for a, v in prepared.covers.items()],
            )
            cursor.execute(
                "INSERT INTO v2v_relay_checkpoint_prepared (relay, sequence, hash, envelope)"
                " VALUES (%s, %s, %s, %s)",
                (self._relay, prepared.sequence, prepared.hash, prepared.envelope),
            )

    def checkpoint_done(self, prepared: PreparedCheckpoint) -> None:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.execute(
                "DELETE FROM v2v_relay_checkpoint_prepared"
                " WHERE relay = %s AND sequence = %s AND hash = %s",
                (self._relay, prepared.sequence, prepared.hash),
            )
            if cursor.rowcount != 1:
                raise CheckpointStateError(
                    f"checkpoint {prepared.sequence} is not the prepared one"
                )
            cursor.execute(
                "UPDATE v2v_relay_chain_head AS h SET checkpointed = c.version"
                " FROM v2v_relay_checkpoint_covers AS c"
                " WHERE c.relay = %s AND h.relay = c.relay AND h.aggregate_id = c.aggregate_id",
                (self._relay,),
            )
            cursor.execute(
                "DELETE FROM v2v_relay_checkpoint_covers WHERE relay = %s", (self._relay,)
            )
            cursor.execute(
                "INSERT INTO v2v_relay_checkpoint (relay, sequence, hash) VALUES (%s, %s, %s)"
                " ON CONFLICT (relay) DO UPDATE SET sequence = EXCLUDED.sequence,"
                " hash = EXCLUDED.hash",
                (self._relay, prepared.sequence, prepared.hash),
            )

    def close(self) -> None:
        self._conn.close()


SQLITE_IN_CHUNK = 500
"""Ids per `IN (...)` query (SQLite allows at least 999 parameters)."""

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS v2v_relay_position (relay TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS v2v_relay_chain_head (
    relay TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
    hash BLOB NOT NULL, PRIMARY KEY (relay, aggregate_id));
CREATE TABLE IF NOT EXISTS v2v_relay_checkpoint (
    relay TEXT PRIMARY KEY, sequence INTEGER NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS v2v_relay_checkpoint_prepared (
    relay TEXT PRIMARY KEY, sequence INTEGER NOT NULL, hash BLOB NOT NULL,
    envelope BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS v2v_relay_checkpoint_covers (
    relay TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (relay, aggregate_id));
"""


class SqliteRelayState(_StateReads):
    """Relay state in a SQLite file beside the service's event store (embedded default),
    private to this user (mode 0600)."""

    def __init__(self, path: Path, relay: str) -> None:
        self._relay = relay
        self._lock = threading.Lock()
        private_file(path)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SQLITE_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(v2v_relay_chain_head)")}
        if "checkpointed" not in columns:  # SQLite has no ADD COLUMN IF NOT EXISTS
            self._conn.execute(
                "ALTER TABLE v2v_relay_chain_head"
                " ADD COLUMN checkpointed INTEGER NOT NULL DEFAULT 0"
            )
        if "signatures" not in columns:  # a store made before signature digests
            self._conn.execute("ALTER TABLE v2v_relay_chain_head ADD COLUMN signatures BLOB")

    def _rows(self, query: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
        return list(self._conn.execute(query.replace("%s", "?"), parameters).fetchall())

    def heads(self, aggregate_ids: Collection[str]) -> dict[str, ChainHead]:
        """One query per SQLITE_IN_CHUNK ids (a page's aggregates), not one per id."""
        found: dict[str, ChainHead] = {}
        ids = list(aggregate_ids)
        for start in range(0, len(ids), SQLITE_IN_CHUNK):
            chunk = ids[start : start + SQLITE_IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for row in self._conn.execute(
                "SELECT aggregate_id, version, hash, signatures FROM v2v_relay_chain_head"
                f" WHERE relay = ? AND aggregate_id IN ({marks})",  # only placeholders
                (self._relay, *chunk),
            ):
                found[str(row[0])] = _chain_head(row)
        return found

    def advance(self, position: int, heads: Mapping[str, ChainHead]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO v2v_relay_chain_head"
                    " (relay, aggregate_id, version, hash, signatures)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (relay, aggregate_id)"
                    " DO UPDATE SET version = excluded.version, hash = excluded.hash,"
                    " signatures = excluded.signatures",
                    [(self._relay, a, h.version, h.hash, h.signatures) for a, h in heads.items()],
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO v2v_relay_position VALUES (?, ?)",
                    (self._relay, position),
                )
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def prepare_checkpoint(self, prepared: PreparedCheckpoint) -> None:
        with self._lock:
            _check_prepare(self.checkpoint_head(), self.prepared_checkpoint(), prepared.sequence)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "DELETE FROM v2v_relay_checkpoint_covers WHERE relay = ?", (self._relay,)
                )
                self._conn.executemany(
                    "INSERT INTO v2v_relay_checkpoint_covers VALUES (?, ?, ?)",
                    [(self._relay, a, v) for a, v in prepared.covers.items()],
                )
                self._conn.execute(
                    "INSERT INTO v2v_relay_checkpoint_prepared VALUES (?, ?, ?, ?)",
                    (self._relay, prepared.sequence, prepared.hash, prepared.envelope),
                )
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def checkpoint_done(self, prepared: PreparedCheckpoint) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._conn.execute(
                    "DELETE FROM v2v_relay_checkpoint_prepared"
                    " WHERE relay = ? AND sequence = ? AND hash = ?",
                    (self._relay, prepared.sequence, prepared.hash),
                ).rowcount
                if deleted != 1:
                    raise CheckpointStateError(
                        f"checkpoint {prepared.sequence} is not the prepared one"
                    )
                self._conn.execute(
                    "UPDATE v2v_relay_chain_head SET checkpointed = ("
                    " SELECT c.version FROM v2v_relay_checkpoint_covers AS c"
                    " WHERE c.relay = v2v_relay_chain_head.relay"
                    " AND c.aggregate_id = v2v_relay_chain_head.aggregate_id)"
                    " WHERE relay = ? AND aggregate_id IN ("
                    " SELECT aggregate_id FROM v2v_relay_checkpoint_covers WHERE relay = ?)",
                    (self._relay, self._relay),
                )
                self._conn.execute(
                    "DELETE FROM v2v_relay_checkpoint_covers WHERE relay = ?", (self._relay,)
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO v2v_relay_checkpoint VALUES (?, ?, ?)",
                    (self._relay, prepared.sequence, prepared.hash),
                )
            except (sqlite3.Error, CheckpointStateError):
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()
