"""Read queries over a projection's tables run side by side (issue 18 item 2): each on a
connection of its own from a small pool, so a command's fact reads do not queue behind
another thread's query (they did: one connection under one lock per store). The pool makes
connections only as concurrent queries need them, up to its bound, and reuses them."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from v2v_platform.read_queries import MAX_READ_CONNECTIONS, ReadQueries, sqlite_query
from v2v_platform.testing.producing import eventually

SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)"
    " SELECT count(*) FROM c"
)


def create_tables(connection: Any) -> None:
    connection.execute("CREATE TABLE IF NOT EXISTS facts (k TEXT PRIMARY KEY, v TEXT)")


def test_a_query_does_not_wait_for_another_threads_query(tmp_path: Path) -> None:
    query = sqlite_query(tmp_path / "facts.sqlite", create_tables)
    writer = sqlite3.connect(tmp_path / "facts.sqlite", isolation_level=None)
    writer.execute("INSERT INTO facts VALUES ('a', '1')")
    counted: list[Any] = []
    slow = threading.Thread(target=lambda: counted.append(query(SLOW, (10_000_000,))))
    slow.start()
    try:
        eventually(lambda: query.busy == 1, "the slow query running", timeout_s=30)
        assert query("SELECT v FROM facts WHERE k = ?", ("a",)) == [("1",)]
        assert slow.is_alive()  # answered while the slow query still runs
        assert query.connections == 2
    finally:
        slow.join()
        writer.close()
    assert counted == [[(10_000_000,)]]
    for _ in range(5):  # one at a time: the pool's connections are reused
        query("SELECT 1", ())
    assert query.connections == 2 and query.busy == 0


def test_the_pool_is_bounded_and_a_query_waits_for_a_free_connection(tmp_path: Path) -> None:
    made: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        made.append(sqlite3.connect(tmp_path / "f.sqlite", check_same_thread=False))
        return made[-1]

    query = ReadQueries(connect, create_tables, max_connections=2)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(query(SLOW, (200_000,)))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[(200_000,)]] * 6
    assert len(made) <= 2 and query.busy == 0


def test_a_failed_query_gives_its_connection_back(tmp_path: Path) -> None:
    query = sqlite_query(tmp_path / "facts.sqlite", create_tables)
    with pytest.raises(sqlite3.OperationalError):
        query("SELECT * FROM no_such_table", ())
    assert query.busy == 0 and query("SELECT count(*) FROM facts", ()) == [(0,)]
    assert query.connections == 1 and MAX_READ_CONNECTIONS >= 1


def test_a_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="at least one connection"):
        ReadQueries(lambda: None, create_tables, max_connections=0)
