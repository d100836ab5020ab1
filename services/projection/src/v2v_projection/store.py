"""The projection core's durable state: every envelope it took (deduplicated by the fold) and
the next Kafka offset of every partition, written in ONE transaction per consumed batch. On
start the fold is rebuilt from the stored envelopes and consumption resumes at the stored
offsets, so a crash between batches neither loses nor double-counts an event.

A batch's new envelopes are stored as one segment row, in the record layout of the history
file (history_file.RECORD: topic index into the segment's topics, partition, offset, length,
then the serialized envelope). One row per batch instead of one per envelope keeps the
database's share of the work small enough for the consumer to run near Kafka's raw read rate
(see bench/); the fold, not SQL, is the read model. The envelopes' bytea column is stored
uncompressed (they are signed and hashed: already dense). Every stored envelope was verified
before it was stored (chain_projection.py). The signed checkpoints the projection took
(`v2v.checkpoints.v1`, issue 15) are rows of the same segments, with their topic; `load` gives
them to its checkpoint index instead of the fold.

The records the projection refused (not envelopes, or envelopes that failed verification) are
stored in the same transaction, in the platform's consumer quarantine table
(`v2v_platform.consumer.quarantine`, consumer `projection`): location, reasons, detail, COI,
claimed author site, raw bytes and time, one row per location. `v2v quarantine list --consumer
projection --sqlite-path <the projection's file>` (or `--postgres-dsn`) lists them.

PostgreSQL or SQLite, by configuration.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from v2v_platform.consumer import quarantine
from v2v_platform.consumer.quarantine import QuarantinedRecord, SqlQuarantine
from v2v_platform.envelope.trust import Untrusted
from v2v_platform.read_queries import for_postgres
from v2v_projection.history_file import RECORD

Row = tuple[str, int, int, bytes]  # topic, partition, offset, serialized envelope
Offsets = Mapping[tuple[str, int], int]  # (topic, partition) -> next offset to read
Quarantined = Sequence[tuple[Untrusted, datetime]]  # refused records and when they were
QUARANTINE_CONSUMER = "projection"  # the projection's name in the quarantine table

_PG_TABLES = (
    """CREATE TABLE IF NOT EXISTS projection_segments (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        topics text NOT NULL,
        envelope_count integer NOT NULL,
        envelopes bytea NOT NULL)""",
    "ALTER TABLE projection_segments ALTER COLUMN envelopes SET STORAGE EXTERNAL",
    *quarantine.POSTGRES_SCHEMA,
    """CREATE TABLE IF NOT EXISTS projection_offsets (
        topic text NOT NULL,
        kafka_partition integer NOT NULL,
        next_offset bigint NOT NULL,
        PRIMARY KEY (topic, kafka_partition))""",
)
_SQLITE_TABLES = (
    """CREATE TABLE IF NOT EXISTS projection_segments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topics TEXT NOT NULL,
        envelope_count INTEGER NOT NULL,
        envelopes BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS projection_offsets (
        topic TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (topic, kafka_partition))""",
    *quarantine.SQLITE_SCHEMA,
)
_INSERT_SEGMENT = (
    "INSERT INTO projection_segments (topics, envelope_count, envelopes) VALUES (?, ?, ?)"
)
_UPSERT_OFFSET = (
    "INSERT INTO projection_offsets (topic, kafka_partition, next_offset) VALUES (?, ?, ?)"
    " ON CONFLICT (topic, kafka_partition) DO UPDATE SET next_offset = excluded.next_offset"
)
_SELECT_SEGMENTS = "SELECT topics, envelopes FROM projection_segments ORDER BY seq"
_SELECT_OFFSETS = "SELECT topic, kafka_partition, next_offset FROM projection_offsets"
_CLEAR_QUARANTINE = f"DELETE FROM {quarantine.TABLE} WHERE consumer = ?"
TOPIC_SEPARATOR = " "


class ProjectionStore(Protocol):
    def save(
        self, rows: Sequence[Row], offsets: Offsets, quarantined: Quarantined = ()
    ) -> None: ...

    def save_segment(
        self, topics: str, count: int, data: bytes, offsets: Offsets, quarantined: Quarantined = ()
    ) -> None: ...
    def envelopes(self) -> Iterator[bytes]: ...
    def quarantined(self) -> list[QuarantinedRecord]: ...
    def rows(self) -> Iterator[Row]: ...
    def offsets(self) -> dict[tuple[str, int], int]: ...
    def count(self) -> int: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


def encode_segment(rows: Sequence[Row]) -> tuple[str, bytes]:
    topics = sorted({row[0] for row in rows})
    index = {topic: i for i, topic in enumerate(topics)}
    pack = RECORD.pack
    parts = []
    for topic, partition, offset, value in rows:
        parts.append(pack(index[topic], partition, offset, len(value)))
        parts.append(value)
    return TOPIC_SEPARATOR.join(topics), b"".join(parts)


def decode_segment(topics_text: str, data: bytes) -> Iterator[Row]:
    topics = topics_text.split(TOPIC_SEPARATOR)
    unpack, size, position, end = RECORD.unpack_from, RECORD.size, 0, len(data)
    while position < end:
        topic_index, partition, offset, length = unpack(data, position)
        start = position + size
        yield topics[topic_index], partition, offset, data[start : start + length]
        position = start + length


class _SqlStore(ABC):
    """What both databases share: the queries, given a cursor-like `execute`. Each database
    writes and reads its segments in its own transaction style."""

    _conn: Any

    def save(self, rows: Sequence[Row], offsets: Offsets, quarantined: Quarantined = ()) -> None:
        """The batch's new envelopes (one segment), its refused records and its next offsets,
        in one transaction."""
        topics, data = encode_segment(rows) if rows else ("", b"")
        self.save_segment(topics, len(rows), data, offsets, quarantined)

    @abstractmethod
    def save_segment(
        self, topics: str, count: int, data: bytes, offsets: Offsets, quarantined: Quarantined = ()
    ) -> None:
        """Store one segment, the refused records and the batch's next offsets in one
        transaction."""

    @abstractmethod
    def _quarantine(self, executor: Any) -> SqlQuarantine:
        """The projection's quarantine rows through `executor` (a connection or cursor)."""

    def quarantined(self) -> list[QuarantinedRecord]:
        """Every record the projection refused, oldest first."""
        return self._quarantine(self._conn).records()

    @abstractmethod
    def _segments(self) -> Iterator[tuple[str, bytes]]:
        """Every stored segment as (topics text, packed records), in storage order."""

    def rows(self) -> Iterator[Row]:
        for topics, data in self._segments():
            yield from decode_segment(topics, bytes(data))

    def envelopes(self) -> Iterator[bytes]:
        for row in self.rows():
            yield row[3]

    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self._conn.execute(_SELECT_OFFSETS).fetchall()
        return {(topic, int(partition)): int(offset) for topic, partition, offset in rows}

    def count(self) -> int:
        row = self._conn.execute(
            "SELECT coalesce(sum(envelope_count), 0) FROM projection_segments"
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._conn.close()


class PostgresProjectionStore(_SqlStore):
    def __init__(self, dsn: str) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True)
        for statement in _PG_TABLES:
            self._conn.execute(statement)
        # Commits return before their WAL is flushed. A crash may lose the last few batches,
        # but atomically (envelopes with their offsets): they are consumed again from Kafka.
        self._conn.execute("SET synchronous_commit = off")

    def save_segment(
        self, topics: str, count: int, data: bytes, offsets: Offsets, quarantined: Quarantined = ()
    ) -> None:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            if count:
                segment = (topics, count, data)
                cursor.execute(for_postgres(_INSERT_SEGMENT), segment)
            refused = self._quarantine(cursor)
            for record, at in quarantined:
                refused.put(record, at)
            cursor.executemany(
                for_postgres(_UPSERT_OFFSET),
                [(topic, partition, offset) for (topic, partition), offset in offsets.items()],
            )

    def _quarantine(self, executor: Any) -> SqlQuarantine:
        return SqlQuarantine(executor, QUARANTINE_CONSUMER, for_postgres)

    def _segments(self) -> Iterator[tuple[str, bytes]]:
        with self._conn.transaction(), self._conn.cursor(name="projection_load") as cursor:
            cursor.itersize = 20
            cursor.execute(_SELECT_SEGMENTS)
            yield from cursor

    def clear(self) -> None:
        with self._conn.transaction():
            self._conn.execute("TRUNCATE projection_segments, projection_offsets")
            self._conn.execute(for_postgres(_CLEAR_QUARANTINE), (QUARANTINE_CONSUMER,))


class SqliteProjectionStore(_SqlStore):
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        for statement in _SQLITE_TABLES:
            self._conn.execute(statement)

    def save_segment(
        self, topics: str, count: int, data: bytes, offsets: Offsets, quarantined: Quarantined = ()
    ) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if count:
                self._conn.execute(_INSERT_SEGMENT, (topics, count, data))
            refused = self._quarantine(self._conn)
            for record, at in quarantined:
                refused.put(record, at)
            self._conn.executemany(
                _UPSERT_OFFSET, [(t, p, offset) for (t, p), offset in offsets.items()]
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _segments(self) -> Iterator[tuple[str, bytes]]:
        yield from self._conn.execute(_SELECT_SEGMENTS)

    def _quarantine(self, executor: Any) -> SqlQuarantine:
        return SqlQuarantine(executor, QUARANTINE_CONSUMER)

    def clear(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("DELETE FROM projection_segments")
        self._conn.execute("DELETE FROM projection_offsets")
        self._conn.execute(_CLEAR_QUARANTINE, (QUARANTINE_CONSUMER,))
        self._conn.execute("COMMIT")


def open_store(postgres_dsn: str | None, sqlite_path: Path | None) -> ProjectionStore:
    if postgres_dsn:
        return PostgresProjectionStore(postgres_dsn)
    if sqlite_path is not None:
        return SqliteProjectionStore(sqlite_path)
    raise ValueError("set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: the projection needs a store")
