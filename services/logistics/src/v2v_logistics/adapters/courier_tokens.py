"""Courier tokens: one per courier and site, issued by a site administrator, shown once.

A token is a random 32-byte secret (URL-safe text); only its SHA-256 hash is stored, in a
durable table (PostgreSQL or SQLite by configuration; the SQLite file is private to the
service: 0600, see `v2v_platform.private_files`). Revoking a courier at a site revokes
every token issued to them there. The sites a courier holds unrevoked tokens for are the
companies the courier works for (`companies_of`, the application's `CourierRoster`). A
token ends: it is accepted until `expires_at`, one shift after it was issued by default
(V2V_COURIER_TOKEN_HOURS, 12); tokens stored before expiry was recorded end one shift after
the upgrade.

A token may be issued with the courier's password (scrypt, as e-signature passwords): the
token names the courier, the password proves the person holding it. Such a token is accepted
only after the courier signed in with it once (`sign_in`, the courier page's login; the
password is asked at login only, not at each scan); `MAX_FAILURES` wrong passwords in a row
revoke it.
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
from v2v_platform.errors import InvalidInput
from v2v_platform.esign import MAX_FAILURES, WeakPassword, hash_password, verify_password
from v2v_platform.private_files import open_private_sqlite

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS logistics_courier_tokens ("
    " token_hash TEXT PRIMARY KEY, courier_id TEXT NOT NULL, printed_name TEXT NOT NULL,"
    " site_id TEXT NOT NULL, issued_at TEXT NOT NULL, revoked_at TEXT)"
)
ADD_EXPIRY = "ALTER TABLE logistics_courier_tokens ADD COLUMN expires_at TEXT"
ADD_SIGN_IN = (
    "ALTER TABLE logistics_courier_tokens ADD COLUMN password_hash TEXT",
    "ALTER TABLE logistics_courier_tokens ADD COLUMN signed_in_at TEXT",
    "ALTER TABLE logistics_courier_tokens ADD COLUMN failures INTEGER NOT NULL DEFAULT 0",
)
COLUMNS = "SELECT * FROM logistics_courier_tokens WHERE 1 = 0"
GRACE = "UPDATE logistics_courier_tokens SET expires_at = ? WHERE expires_at IS NULL"
INSERT = (
    "INSERT INTO logistics_courier_tokens"
    " (token_hash, courier_id, printed_name, site_id, issued_at, revoked_at, expires_at,"
    " password_hash) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)"
)
SELECT = (
    "SELECT courier_id, printed_name, site_id, expires_at, password_hash, signed_in_at,"
    " failures FROM logistics_courier_tokens WHERE token_hash = ? AND revoked_at IS NULL"
)
SIGNED_IN = (
    "UPDATE logistics_courier_tokens SET signed_in_at = ?, failures = 0 WHERE token_hash = ?"
)
FAILED = "UPDATE logistics_courier_tokens SET failures = ? WHERE token_hash = ?"
REVOKE_ONE = "UPDATE logistics_courier_tokens SET revoked_at = ? WHERE token_hash = ?"
COMPANIES = (
    "SELECT DISTINCT site_id FROM logistics_courier_tokens"
    " WHERE courier_id = ? AND revoked_at IS NULL"
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
    signed_in: bool = True
    """False for a token issued with a password whose courier has not signed in with it."""


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
        for statement in ADD_SIGN_IN:
            self._add_column(statement)

    def _add_column(self, statement: str) -> bool:
        """False when the column is there already."""
        try:
            self._execute(statement, ())
        except (sqlite3.OperationalError, psycopg.errors.DuplicateColumn):
            return False
        return True

    def _record_expiry(self) -> None:
        """Tables made before tokens ended get the column; their tokens end one shift on."""
        if self._add_column(ADD_EXPIRY):
            self._execute(GRACE, (_stamp(self._clock() + self.lifetime),))

    def issue(self, courier_id: str, printed_name: str, site_id: str, password: str = "") -> str:
        """A new token for the courier at the site (returned once, never stored in clear),
        accepted for `lifetime` (see `expires_at`); with a `password` (at least 8
        characters), accepted once the courier signed in with it (`sign_in`)."""
        parse_courier_id(courier_id)
        parse_site(site_id)
        name = require_text("courier's printed name", printed_name)
        secret = _password_hash(password) if password else None
        token = secrets.token_urlsafe(32)
        now = self._clock()
        row = (token_hash(token), courier_id, name, site_id, _stamp(now))
        self._execute(INSERT, (*row, _stamp(now + self.lifetime), secret))
        return token

    def expires_at(self, token: str) -> datetime | None:
        rows, _ = self._execute(SELECT, (token_hash(token),))
        return datetime.fromisoformat(rows[0][3]) if rows and rows[0][3] else None

    def sign_in(self, token: str, password: str) -> CourierIdentity | None:
        """The courier, when the live token's password is `password` (a token issued without
        a password needs none); None otherwise. Each wrong password counts; the
        `MAX_FAILURES`-th in a row revokes the token."""
        found = self._live(token)
        if found is None:
            return None
        identity, secret, failures = found
        if secret is None:
            return identity
        if not verify_password(password, secret):
            self._execute(FAILED, (failures + 1, token_hash(token)))
            if failures + 1 >= MAX_FAILURES:
                self._execute(REVOKE_ONE, (_stamp(self._clock()), token_hash(token)))
            return None
        self._execute(SIGNED_IN, (_stamp(self._clock()), token_hash(token)))
        return CourierIdentity(identity.courier_id, identity.printed_name, identity.site_id)

    def revoke(self, courier_id: str, site_id: str) -> int:
        """Revoke every live token of the courier at the site; how many were revoked."""
        _, count = self._execute(REVOKE, (datetime.now(UTC).isoformat(), courier_id, site_id))
        return count

    def companies_of(self, courier_id: str) -> frozenset[str]:
        """The sites the courier works for: those they were issued a token for and not
        revoked at (an expired token ends a shift, not the employment)."""
        rows, _ = self._execute(COMPANIES, (courier_id,))
        return frozenset(str(row[0]) for row in rows)

    def identify(self, token: str) -> CourierIdentity | None:
        """The courier a live token belongs to (`signed_in` False while a token issued with
        a password was not signed in with); None when unknown, revoked or expired."""
        found = self._live(token)
        return found[0] if found else None

    def _live(self, token: str) -> tuple[CourierIdentity, str | None, int] | None:
        rows, _ = self._execute(SELECT, (token_hash(token),))
        if not rows:
            return None
        courier_id, printed_name, site_id, expires_at, secret, signed_in_at, failures = rows[0]
        if expires_at is None or datetime.fromisoformat(expires_at) <= self._clock():
            return None
        signed_in = secret is None or signed_in_at is not None
        identity = CourierIdentity(str(courier_id), str(printed_name), str(site_id), signed_in)
        return identity, secret, int(failures or 0)


def _password_hash(password: str) -> str:
    try:
        return hash_password(password)
    except WeakPassword as error:
        raise InvalidInput(str(error)) from None


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
