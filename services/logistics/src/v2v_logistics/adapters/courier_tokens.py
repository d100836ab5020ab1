"""Courier tokens: one per courier and site, issued by a site administrator, shown once.

A token is a random 32-byte secret (URL-safe text); only its SHA-256 hash is stored, in a
durable table (PostgreSQL or SQLite by configuration; the SQLite file is private to the
service: 0600, see `v2v_platform.private_files`). Revoking a courier at a site revokes
every token issued to them there.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
INSERT = "INSERT INTO logistics_courier_tokens VALUES (?, ?, ?, ?, ?, NULL)"
SELECT = (
    "SELECT courier_id, printed_name, site_id FROM logistics_courier_tokens"
    " WHERE token_hash = ? AND revoked_at IS NULL"
)
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
    def __init__(self, execute: Execute) -> None:
        self._execute = execute
        self._execute(SCHEMA, ())

    def issue(self, courier_id: str, printed_name: str, site_id: str) -> str:
        """A new token for the courier at the site (returned once, never stored in clear)."""
        parse_courier_id(courier_id)
        parse_site(site_id)
        name = require_text("courier's printed name", printed_name)
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC).isoformat()
        self._execute(INSERT, (token_hash(token), courier_id, name, site_id, now))
        return token

    def revoke(self, courier_id: str, site_id: str) -> int:
        """Revoke every live token of the courier at the site; how many were revoked."""
        _, count = self._execute(REVOKE, (datetime.now(UTC).isoformat(), courier_id, site_id))
        return count

    def identify(self, token: str) -> CourierIdentity | None:
        rows, _ = self._execute(SELECT, (token_hash(token),))
        if not rows:
            return None
        courier_id, printed_name, site_id = rows[0]
        return CourierIdentity(str(courier_id), str(printed_name), str(site_id))


def sqlite_tokens(path: Path | str) -> CourierTokens:
    connection = open_private_sqlite(path)
    lock = threading.Lock()

    def execute(sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        with lock:
            cursor = connection.execute(sql, tuple(params))
            return cursor.fetchall(), cursor.rowcount

    return CourierTokens(execute)


def postgres_tokens(dsn: str) -> CourierTokens:
    connection = psycopg.connect(dsn, autocommit=True)
    lock = threading.Lock()

    def execute(sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        with lock, connection.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), tuple(params))
            rows = cursor.fetchall() if cursor.description else []
            return rows, cursor.rowcount

    return CourierTokens(execute)
