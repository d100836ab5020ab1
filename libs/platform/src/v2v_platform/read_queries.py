"""Read queries over a projection's own tables, on SQLite or PostgreSQL by configuration.

Projections write their SQL once with `?` placeholders; `for_postgres` adapts it. A `Query`
is thread-safe, for the request threads that read projections: each query runs on a
connection of its own from a small pool (`ReadQueries`: made when concurrent queries need
them, up to MAX_READ_CONNECTIONS, then reused; a thread waits only when all are busy), so
concurrent commands do not queue behind one connection's lock (issue 18 item 2: a command
reads several facts; on PostgreSQL each is a round trip). Every query runs on its own
(autocommit): it sees what the projection's consumer has committed, as before.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
MAX_READ_CONNECTIONS = 8
"""Connections per store a service's readers open at most (at least one per gRPC worker
thread that reads facts at once would be ideal; the server runs 8)."""


def for_postgres(sql: str) -> str:
    return sql.replace("?", "%s")


class ReadQueries:
    """A `Query` over a pool of connections made by `connect` (the first one creates the
    tables), each used by one query at a time."""

    def __init__(
        self,
        connect: Callable[[], Any],
        create_tables: Callable[[Any], None],
        adapt: Callable[[str], str] = str,
        max_connections: int = MAX_READ_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("a reader needs at least one connection")
        self._connect = connect
        self._adapt = adapt
        self.max_connections = max_connections
        first = connect()
        create_tables(first)
        self._idle: list[Any] = [first]
        self._made = 1
        self._busy = 0
        self._available = threading.Condition()

    @property
    def busy(self) -> int:
        """How many queries are running now."""
        with self._available:
            return self._busy

    @property
    def connections(self) -> int:
        """How many connections the pool has made."""
        with self._available:
            return self._made

    def __call__(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        connection = self._take()
        try:
            rows: list[tuple[Any, ...]] = connection.execute(
                self._adapt(sql), tuple(params)
            ).fetchall()
            return rows
        finally:
            self._give_back(connection)

    def _take(self) -> Any:
        with self._available:
            while not self._idle and self._made >= self.max_connections:
                self._available.wait()
            self._busy += 1
            if self._idle:
                return self._idle.pop()  # the most recently used: warm
            self._made += 1
        try:
            return self._connect()  # outside the lock: connecting may take a round trip
        except BaseException:
            with self._available:
                self._made -= 1
                self._busy -= 1
                self._available.notify()
            raise

    def _give_back(self, connection: Any) -> None:
        with self._available:
            self._idle.append(connection)
            self._busy -= 1
            self._available.notify()


def sqlite_query(path: Path, create_tables: Callable[[Any], None]) -> ReadQueries:
    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, check_same_thread=False, isolation_level=None)

    return ReadQueries(connect, create_tables)


def postgres_query(dsn: str, create_tables: Callable[[Any], None]) -> ReadQueries:
    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(dsn, autocommit=True)

    return ReadQueries(connect, create_tables, for_postgres)
