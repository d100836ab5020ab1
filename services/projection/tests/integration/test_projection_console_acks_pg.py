"""The console's acknowledgements on PostgreSQL (table `console_acks`, created IF NOT EXISTS):
the first acknowledgement stands, and a second store on the same database sees it."""

from __future__ import annotations

import pytest

from v2v_platform.testing.infra import PostgresDatabase
from v2v_projection.console.acks import Ack, PostgresAckStore, open_ack_store

pytestmark = pytest.mark.integration

FIRST = Ack(
    "CHA123425000017",
    "temperature-excursion",
    "2025-03-01T10:00:00+00:00",
    "e-1",
    "HOSP-A",
    "2025-03-02T08:00:00Z",
    "logger reviewed",
)


def test_postgres_acknowledgements(postgres_database: PostgresDatabase) -> None:
    store = open_ack_store(postgres_database.dsn, None)
    assert isinstance(store, PostgresAckStore)
    assert store.acknowledge(FIRST) == FIRST
    later = Ack(*FIRST.ref, "GMP-B", "2025-03-03T00:00:00Z", "later")
    assert store.acknowledge(later) == FIRST

    other = PostgresAckStore(postgres_database.dsn)  # a restart: the table exists already
    assert other.of_chains([FIRST.coi, "CHA123425000018"]) == {FIRST.ref: FIRST}
    other.close()
    store.close()
