"""The PostgreSQL key store under concurrent enrolments (issue 18 item 2): calls do not queue
on one connection, and each COI gets exactly one key whoever asks for it at the same time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from v2v_intake.adapters.key_store import PostgresKeyStore
from v2v_platform.testing.producing import eventually

pytestmark = pytest.mark.integration

HELD_KEY = b"k" * 32


def waiting_on_locks(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_call_waiting_on_a_row_lock_does_not_hold_up_other_cois(postgres_database: Any) -> None:
    dsn = postgres_database.dsn
    store = PostgresKeyStore(dsn)
    blocker = psycopg.connect(dsn)  # a transaction inserting COI-X's key, not yet committed
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        blocker.execute(
            "INSERT INTO intake_data_keys (coi, key) VALUES (%s, %s)", ("COI-X", HELD_KEY)
        )
        held_up = pool.submit(store.get_or_create, "COI-X")
        eventually(lambda: waiting_on_locks(dsn), "the store's insert of COI-X waiting")
        other = pool.submit(store.get_or_create, "COI-Y")
        assert len(other.result(timeout=20)) == 32  # while COI-X's call still waits
        assert not held_up.done()
        blocker.commit()
        assert held_up.result(timeout=20) == HELD_KEY  # the key committed meanwhile
    finally:
        blocker.close()  # an open transaction is rolled back: nothing waits on it any more
        pool.shutdown(wait=True)
        store.close()


def test_concurrent_callers_of_one_coi_get_the_same_key(postgres_database: Any) -> None:
    store = PostgresKeyStore(postgres_database.dsn)
    cois = [f"COI-{n}" for n in range(60)]
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            keys = list(pool.map(store.get_or_create, cois + cois + cois))
        for n, coi in enumerate(cois):
            assert keys[n] == keys[n + len(cois)] == keys[n + 2 * len(cois)] == store.get(coi)
        assert len(set(keys)) == len(cois)
        store.destroy(cois[0])
        assert store.get(cois[0]) is None
    finally:
        store.close()
