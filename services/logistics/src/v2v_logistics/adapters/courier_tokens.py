"""Courier tokens: one per courier and site, issued by a site administrator, shown once.

A token is a random 32-byte secret (URL-safe text); only its SHA-256 hash is stored, in a
durable table (PostgreSQL or SQLite by configuration; the SQLite file is private to the
service: 0600, see `v2v_platform.private_files`). Revoking a courier at a site revokes
every token issued to them there. A token ends: it is accepted until `expires_at`, one shift
after it was issued by default (V2V_COURIER_TOKEN_HOURS, 12); tokens stored before expiry was
recorded end one shift after the upgrade.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from v2v_logistics.domain.values import parse_courier_id, parse_site, require_text
from v2v_platform.private_files import open_private_sqlite

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS logistics_courier_tokens ("
    " token_hash TEXT PRIMARY KEY, courier_id TEXT NOT NULL, printed_name TEXT NOT NULL,"
    " site_id TEXT NOT NULL, issued_at TEXT NOT NULL, revoked_at TEXT)"
)
ADD_EXPIRY = "ALTER TABLE logistics_courier_tokens ADD COLUMN expires_at TEXT"
COLUMNS = "SELECT * FROM logistics_courier_tokens WHERE 1 = 0"
GRACE = "UPDATE logistics_courier_tokens SET expires_at = ? WHERE expires_at IS NULL"
INSERT = (
    "INSERT INTO logistics_courier_tokens"
    " (token_hash, courier_id, printed_name, site_id, issued_at, revoked_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, NULL, ?)"
)
SELECT = (
    "SELECT courier_id, printed_name, site_id, expires_at FROM logistics_courier_tokens"
    " WHERE token_hash = ? AND revoked_at IS NULL"
)
DEFAULT_LIFETIME = timedelta(hours=12)
REVOKE = (
    "UPDATE logistics_courier_tokens SET revoked_at = ?"
    " WHERE courier_id = ? AND site_id = ? AND revoked_at IS NULL"
)

Execute = Callable[[str, Sequence[Any]], tuple[list[tuple[Any, ...]], int]]


@dataclass(frozen=True)
class CourierIdentity:
    courier_id: str
    printed_name: str
    site_id: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CourierTokens:
    def __init__(
        self,
        execute: Execute,
        lifetime: timedelta = DEFAULT_LIFETIME,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._execute = execute
        self.lifetime = lifetime
        self._clock = clock
        self._execute(SCHEMA, ())
        self._record_expiry()

    def _record_expiry(self) -> None:
        """Tables made before tokens ended get the column; their tokens end one shift on."""
        try:
            self._execute(ADD_EXPIRY, ())
        except (sqlite3.OperationalError, psycopg.errors.DuplicateColumn):
            return  # the column is there already
        self._execute(GRACE, (_stamp(self._clock() + self.lifetime),))

    def issue(self, courier_id: str, printed_name: str, site_id: str) -> str:
        """A new token for the courier at the site (returned once, never stored in clear),
        accepted for `lifetime` (see `expires_at`)."""
        parse_courier_id(courier_id)
        parse_site(site_id)
        name = require_text("courier's printed name", printed_name)
        token = secrets.token_urlsafe(32)
        now = self._clock()
        row = (token_hash(token), courier_id, name, site_id, _stamp(now))
        self._execute(INSERT, (*row, _stamp(now + self.lifetime)))
        return token

    def expires_at(self, token: str) -> datetime | None:
        rows, _ = self._execute(SELECT, (token_hash(token),))
        return datetime.fromisoformat(rows[0][3]) if rows and rows[0][3] else None

    def revoke(self, courier_id: str, site_id: str) -> int:
        """Revoke every live token of the courier at the site; how many were revoked."""
        _, count = self._execute(REVOKE, (datetime.now(UTC).isoformat(), courier_id, site_id))
        return count

    def identify(self, token: str) -> CourierIdentity | None:
        """The courier a live token belongs to; None when unknown, revoked or expired."""
        rows, _ = self._execute(SELECT, (token_hash(token),))
        if not rows:
            return None
        courier_id, printed_name, site_id, expires_at = rows[0]
        if expires_at is None or datetime.fromisoformat(expires_at) <= self._clock():
            return None
        return CourierIdentity(str(courier_id), str(printed_name), str(site_id))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def sqlite_tokens(path: Path | str, lifetime: timedelta = DEFAULT_LIFETIME) -> CourierTokens:
    connection = open_private_sqlite(path)
    lock = threading.Lock()

    def execute(sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        with lock:
            cursor = connection.execute(sql, tuple(params))
            return cursor.fetchall(), cursor.rowcount

    return CourierTokens(execute, lifetime)


def postgres_tokens(dsn: str, lifetime: timedelta = DEFAULT_LIFETIME) -> CourierTokens:
    connection = psycopg.connect(dsn, autocommit=True)
    lock = threading.Lock()

    def execute(sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        with lock, connection.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), tuple(params))
            rows = cursor.fetchall() if cursor.description else []
            return rows, cursor.rowcount

    return CourierTokens(execute, lifetime)
