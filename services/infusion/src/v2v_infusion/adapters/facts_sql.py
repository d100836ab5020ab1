"""The projection's tables (SQLite or PostgreSQL) and `SqlInfusionFacts`, the application's
`InfusionFacts` port read from them. SQL is written once with `?` placeholders."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from v2v_infusion.domain.values import FailureAlert, KnownProduct, ReleaseState, ReleaseStatus
from v2v_platform.conditions import Condition
from v2v_platform.read_queries import Query, postgres_query, sqlite_query

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS infusion_product_units ("
    " din_data TEXT PRIMARY KEY, din TEXT NOT NULL, coi TEXT NOT NULL, batch_id TEXT NOT NULL,"
    " condition TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS infusion_product_units_batch ON infusion_product_units (batch_id)",
    "CREATE TABLE IF NOT EXISTS infusion_release_decisions ("
    " batch_id TEXT NOT NULL, decision TEXT NOT NULL, decided_at TEXT NOT NULL,"
    " PRIMARY KEY (batch_id, decision))",
    "CREATE TABLE IF NOT EXISTS infusion_failures ("
    " failure_id TEXT PRIMARY KEY, coi TEXT NOT NULL, batch_id TEXT NOT NULL,"
    " product_dins TEXT NOT NULL, test TEXT NOT NULL, value TEXT NOT NULL,"
    " criterion TEXT NOT NULL, result_at TEXT NOT NULL, raised_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS infusion_failures_batch ON infusion_failures (batch_id)",
    "CREATE TABLE IF NOT EXISTS infusion_treating_sites ("
    " coi TEXT PRIMARY KEY, treating_site_id TEXT NOT NULL)",
)
UPSERT_UNIT = (
    "INSERT INTO infusion_product_units VALUES (?, ?, ?, ?, ?) ON CONFLICT (din_data)"
    " DO UPDATE SET din = excluded.din, coi = excluded.coi, batch_id = excluded.batch_id,"
    " condition = excluded.condition"
)
UPSERT_DECISION = (
    "INSERT INTO infusion_release_decisions VALUES (?, ?, ?) ON CONFLICT (batch_id, decision)"
    " DO UPDATE SET decided_at = CASE"
    " WHEN excluded.decided_at < infusion_release_decisions.decided_at"
    " THEN excluded.decided_at ELSE infusion_release_decisions.decided_at END"
)
INSERT_FAILURE = (
    "INSERT INTO infusion_failures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (failure_id) DO NOTHING"
)
UPSERT_TREATING_SITE = (
    "INSERT INTO infusion_treating_sites VALUES (?, ?) ON CONFLICT (coi)"
    " DO UPDATE SET treating_site_id = excluded.treating_site_id"
)
SELECT_UNIT = "SELECT din, coi, batch_id, condition FROM infusion_product_units WHERE din_data = ?"
SELECT_BATCH_DINS = "SELECT din FROM infusion_product_units WHERE batch_id = ? ORDER BY din_data"
SELECT_DECISIONS = "SELECT decision, decided_at FROM infusion_release_decisions WHERE batch_id = ?"
FAILURE_COLUMNS = (
    "SELECT failure_id, coi, batch_id, product_dins, test, value, criterion, result_at,"
    " raised_at FROM infusion_failures"
)
SELECT_FAILURES = f"{FAILURE_COLUMNS} ORDER BY raised_at, failure_id"
SELECT_BATCH_FAILURES = f"{FAILURE_COLUMNS} WHERE batch_id = ? ORDER BY raised_at, failure_id"
SELECT_FAILURE = f"{FAILURE_COLUMNS} WHERE failure_id = ?"
SELECT_TREATING_SITE = "SELECT treating_site_id FROM infusion_treating_sites WHERE coi = ?"

STRENGTH = {
    ReleaseStatus.PROVISIONAL: 1,
    ReleaseStatus.OOS_ACCEPTED: 2,
    ReleaseStatus.FINAL: 3,
    ReleaseStatus.REJECTED: 4,
}


def create_tables(connection: Any) -> None:
    for statement in SCHEMA:
        connection.execute(statement)


def release_state(decisions: Iterable[tuple[str, str]]) -> ReleaseState:
    """The strongest decision, released at the earliest decision that released the batch."""
    made = {ReleaseStatus(decision): datetime.fromisoformat(at) for decision, at in decisions}
    if not made:
        return ReleaseState()
    status = max(made, key=STRENGTH.__getitem__)
    release_times = [at for decision, at in made.items() if decision.releases]
    return ReleaseState(status, min(release_times) if release_times else None)


class SqlInfusionFacts:
    """The application's `InfusionFacts` port, read from the projection's tables."""

    def __init__(self, query: Query) -> None:
        self._query = query

    def product_unit(self, din_data: str) -> KnownProduct | None:
        rows = self._query(SELECT_UNIT, (din_data,))
        if not rows:
            return None
        din, coi, batch_id, condition = rows[0]
        return KnownProduct(din, coi, batch_id, Condition(condition))

    def release_of(self, batch_id: str) -> ReleaseState:
        return release_state(self._query(SELECT_DECISIONS, (batch_id,)))

    def failures_of_batch(self, batch_id: str) -> list[FailureAlert]:
        return [self._alert(row) for row in self._query(SELECT_BATCH_FAILURES, (batch_id,))]

    def failure(self, failure_id: str) -> FailureAlert | None:
        rows = self._query(SELECT_FAILURE, (failure_id,))
        return self._alert(rows[0]) if rows else None

    def failures(self) -> list[FailureAlert]:
        return [self._alert(row) for row in self._query(SELECT_FAILURES, ())]

    def treating_site_of(self, coi: str) -> str | None:
        rows = self._query(SELECT_TREATING_SITE, (coi,))
        return str(rows[0][0]) if rows else None

    def _alert(self, row: tuple[Any, ...]) -> FailureAlert:
        failure_id, coi, batch_id, dins, test, value, criterion, result_at, raised_at = row
        named = [din for din in dins.split(",") if din]
        of_batch = [din for (din,) in self._query(SELECT_BATCH_DINS, (batch_id,))]
        return FailureAlert(
            failure_id,
            coi,
            batch_id,
            tuple(dict.fromkeys([*named, *of_batch])),
            test,
            value,
            criterion,
            datetime.fromisoformat(result_at),
            datetime.fromisoformat(raised_at),
        )


def sqlite_facts(path: Path) -> SqlInfusionFacts:
    return SqlInfusionFacts(sqlite_query(path, create_tables))


def postgres_facts(dsn: str) -> SqlInfusionFacts:
    return SqlInfusionFacts(postgres_query(dsn, create_tables))
