"""Courier tokens end: accepted for one shift by default, refused after; stores made before
expiry existed give their tokens one shift from the upgrade (issue 13, credentials that end)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from v2v_logistics.adapters.courier_tokens import CourierTokens, sqlite_tokens, token_hash
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.config import load_settings

T0 = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def tokens_at(path: Path, clock: Clock, hours: int = 12) -> CourierTokens:
    connection = sqlite3.connect(path, isolation_level=None)

    def execute(sql: str, params: object) -> tuple[list[tuple[object, ...]], int]:
        cursor = connection.execute(sql, tuple(params))  # type: ignore[arg-type]
        return cursor.fetchall(), cursor.rowcount

    return CourierTokens(execute, timedelta(hours=hours), clock)


def test_a_token_is_accepted_for_its_shift_and_refused_after(tmp_path: Path) -> None:
    clock = Clock()
    tokens = tokens_at(tmp_path / "tokens.sqlite", clock)
    token = tokens.issue("C-1", "Kim Courier", "HOSP-A")
    assert tokens.expires_at(token) == T0 + timedelta(hours=12)
    clock.now = T0 + timedelta(hours=11, minutes=59)
    identity = tokens.identify(token)
    assert identity is not None and identity.courier_id == "C-1"
    clock.now = T0 + timedelta(hours=12)
    assert tokens.identify(token) is None


def test_tokens_of_a_store_made_before_expiry_end_one_shift_after_the_upgrade(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute(
        "CREATE TABLE logistics_courier_tokens (token_hash TEXT PRIMARY KEY, courier_id TEXT"
        " NOT NULL, printed_name TEXT NOT NULL, site_id TEXT NOT NULL, issued_at TEXT NOT NULL,"
        " revoked_at TEXT)"
    )
    old.execute(
        "INSERT INTO logistics_courier_tokens VALUES (?, 'C-2', 'Old Courier', 'HOSP-A', ?, NULL)",
        (token_hash("old-token"), (T0 - timedelta(days=90)).isoformat()),
    )
    old.close()
    clock = Clock()
    tokens = tokens_at(path, clock)
    assert tokens.identify("old-token") is not None
    clock.now = T0 + timedelta(hours=12, seconds=1)
    assert tokens.identify("old-token") is None
    assert tokens_at(path, clock).identify("old-token") is None  # reopening grants nothing


def test_the_shift_length_is_a_setting(tmp_path: Path) -> None:
    settings = load_settings(
        LogisticsSettings, site_id="LOGI-1", pki_dir=tmp_path, courier_token_hours=8
    )
    assert settings.courier_token_lifetime == timedelta(hours=8)
    store = sqlite_tokens(tmp_path / "t.sqlite", settings.courier_token_lifetime)
    token = store.issue("C-3", "Lee Courier", "HOSP-B")
    expires = store.expires_at(token)
    assert expires is not None
    assert timedelta(hours=7, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=8)
