"""A consumer's quarantine: the records it refused to apply, kept beside its ledger.

One row per record location (consumer, topic, partition, offset), so quarantining a record
delivered again changes nothing. A row is `quarantined`; an operator who fixed the key ring
marks it `released` (`v2v quarantine reapply`, after verifying it again); the running
consumer verifies released rows again with its own gate on its next poll and, in the same
transaction as its ledger, applies them (`applied`) or puts them back (`quarantined`, with the
new reasons). A released record whose stream the ledger has already applied at or past its
version is not applied (the ledger applies each stream's versions in ascending order only, as
for any late version) and becomes `superseded`; the consumer logs it.

The SQL is written once with `?` placeholders and runs on a SQLite connection or a psycopg
cursor (both have `execute(sql, params)` returning a cursor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from v2v_platform.envelope.trust import Untrusted
from v2v_platform.envelope.verify import Location
from v2v_platform.read_queries import for_postgres

QUARANTINED = "quarantined"
RELEASED = "released"
APPLIED = "applied"
SUPERSEDED = "superseded"  # released, but its stream's ledger was already at or past it
STATUSES = (QUARANTINED, RELEASED, APPLIED, SUPERSEDED)

TABLE = "v2v_consumer_quarantine"
_COLUMNS = (
    "topic, kafka_partition, kafka_offset, reasons, detail, coi, claimed_site, raw,"
    " quarantined_at, status, released_at, applied_at"
)
_KEY = "consumer = ? AND topic = ? AND kafka_partition = ? AND kafka_offset = ?"


def schema(binary: str, integer: str) -> tuple[str, ...]:
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (consumer TEXT NOT NULL, topic TEXT NOT NULL,"
        f" kafka_partition {integer} NOT NULL, kafka_offset {integer} NOT NULL,"
        " reasons TEXT NOT NULL, detail TEXT NOT NULL, coi TEXT NOT NULL,"
        f" claimed_site TEXT NOT NULL, raw {binary} NOT NULL, quarantined_at TEXT NOT NULL,"
        " status TEXT NOT NULL, released_at TEXT, applied_at TEXT,"
        " PRIMARY KEY (consumer, topic, kafka_partition, kafka_offset))",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_status ON {TABLE} (consumer, status)",
    )


SQLITE_SCHEMA = schema("BLOB", "INTEGER")
POSTGRES_SCHEMA = schema("BYTEA", "BIGINT")


@dataclass(frozen=True)
class QuarantinedRecord:
    location: Location
    reasons: tuple[str, ...]
    detail: str
    coi: str
    claimed_site: str
    raw: bytes
    quarantined_at: datetime
    status: str
    released_at: datetime | None = None
    applied_at: datetime | None = None

    @property
    def reason(self) -> str:
        return ",".join(self.reasons)


class Quarantine(Protocol):
    """The quarantine rows of one consumer, in the consumer's open transaction."""

    def put(self, record: Untrusted, at: datetime) -> bool:
        """Quarantine `record`; False when its location already has a row."""
        ...

    def released(self) -> list[QuarantinedRecord]: ...
    def settle(self, location: Location, status: str, at: datetime) -> None:
        """A released record was taken: `applied`, or `superseded` (not applied)."""
        ...

    def put_back(self, record: Untrusted) -> None: ...
    def release(self, location: Location, at: datetime) -> bool: ...
    def get(self, location: Location) -> QuarantinedRecord | None: ...
    def records(self, status: str | None = None) -> list[QuarantinedRecord]: ...


class SqlQuarantine:
    """Quarantine rows through a SQLite connection or a psycopg cursor (`placeholders`:
    `str` for SQLite, `for_postgres` for PostgreSQL)."""

    def __init__(
        self, executor: Any, consumer: str, placeholders: Callable[[str], str] = str
    ) -> None:
        self._executor = executor
        self._consumer = consumer
        self._sql = placeholders

    @classmethod
    def postgres(cls, cursor: Any, consumer: str) -> SqlQuarantine:
        return cls(cursor, consumer, for_postgres)

    def _run(self, sql: str, params: tuple[Any, ...]) -> Any:
        return self._executor.execute(self._sql(sql), params)

    def put(self, record: Untrusted, at: datetime) -> bool:
        row: tuple[Any, ...] = (*self._key(record.location), record.reason, record.detail)
        row += (record.coi, record.claimed_site, record.raw, _text(at), QUARANTINED)
        cursor = self._run(
            f"INSERT INTO {TABLE} (consumer, topic, kafka_partition, kafka_offset, reasons,"
            " detail, coi, claimed_site, raw, quarantined_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (consumer, topic, kafka_partition, kafka_offset) DO NOTHING",
            row,
        )
        return bool(cursor.rowcount == 1)

    def released(self) -> list[QuarantinedRecord]:
        return self._select(
            " AND status = ? ORDER BY released_at, topic, kafka_partition, kafka_offset",
            (RELEASED,),
        )

    def settle(self, location: Location, status: str, at: datetime) -> None:
        self._run(
            f"UPDATE {TABLE} SET status = ?, applied_at = ? WHERE {_KEY}",
            (status, _text(at), *self._key(location)),
        )

    def put_back(self, record: Untrusted) -> None:
        """A released record that still does not verify: quarantined again, why now."""
        self._run(
            f"UPDATE {TABLE} SET status = ?, reasons = ?, detail = ?, released_at = NULL"
            f" WHERE {_KEY}",
            (QUARANTINED, record.reason, record.detail, *self._key(record.location)),
        )

    def release(self, location: Location, at: datetime) -> bool:
        """Mark a quarantined record released; False when it is not (or no longer) quarantined."""
        cursor = self._run(
            f"UPDATE {TABLE} SET status = ?, released_at = ? WHERE {_KEY} AND status = ?",
            (RELEASED, _text(at), *self._key(location), QUARANTINED),
        )
        return bool(cursor.rowcount == 1)

    def get(self, location: Location) -> QuarantinedRecord | None:
        found = self._select(
            " AND topic = ? AND kafka_partition = ? AND kafka_offset = ?",
            (location.topic, location.partition, location.offset),
        )
        return found[0] if found else None

    def records(self, status: str | None = None) -> list[QuarantinedRecord]:
        order = " ORDER BY quarantined_at, topic, kafka_partition, kafka_offset"
        if status is None:
            return self._select(order, ())
        return self._select(" AND status = ?" + order, (status,))

    def _key(self, location: Location) -> tuple[str, str, int, int]:
        return (self._consumer, location.topic, location.partition, location.offset)

    def _select(self, condition: str, params: tuple[Any, ...]) -> list[QuarantinedRecord]:
        cursor = self._run(
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE consumer = ?{condition}",
            (self._consumer, *params),
        )
        return [_record(row) for row in cursor.fetchall()]


class InMemoryQuarantine:
    """For unit tests only."""

    def __init__(self) -> None:
        self.rows: dict[Location, QuarantinedRecord] = {}

    def put(self, record: Untrusted, at: datetime) -> bool:
        if record.location in self.rows:
            return False
        self.rows[record.location] = QuarantinedRecord(
            record.location,
            record.reasons,
            record.detail,
            record.coi,
            record.claimed_site,
            record.raw,
            at,
            QUARANTINED,
        )
        return True

    def released(self) -> list[QuarantinedRecord]:
        return [row for row in self.rows.values() if row.status == RELEASED]

    def settle(self, location: Location, status: str, at: datetime) -> None:
        self._update(location, status=status, applied_at=at)

    def put_back(self, record: Untrusted) -> None:
        self._update(
            record.location,
            status=QUARANTINED,
            reasons=record.reasons,
            detail=record.detail,
            released_at=None,
        )

    def release(self, location: Location, at: datetime) -> bool:
        row = self.rows.get(location)
        if row is None or row.status != QUARANTINED:
            return False
        self._update(location, status=RELEASED, released_at=at)
        return True

    def get(self, location: Location) -> QuarantinedRecord | None:
        return self.rows.get(location)

    def records(self, status: str | None = None) -> list[QuarantinedRecord]:
        return [row for row in self.rows.values() if status in (None, row.status)]

    def _update(self, location: Location, **changes: Any) -> None:
        self.rows[location] = replace(self.rows[location], **changes)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _record(row: tuple[Any, ...]) -> QuarantinedRecord:
    topic, partition, offset, reasons, detail, coi, site, raw, at, status, released, applied = row
    return QuarantinedRecord(
        Location(topic, int(partition), int(offset)),
        tuple(reasons.split(",")),
        detail,
        coi,
        site,
        bytes(raw),
        datetime.fromisoformat(at),
        status,
        _moment(released),
        _moment(applied),
    )
