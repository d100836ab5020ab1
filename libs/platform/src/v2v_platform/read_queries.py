"""Read queries over a projection's own tables, on SQLite or PostgreSQL by configuration.

Projections write their SQL once with `?` placeholders; `for_postgres` adapts it. A `Query`
is thread-safe (one connection, one lock), for the request threads that read projections.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def for_postgres(sql: str) -> str:
    return sql.replace("?", "%s")


def sqlite_query(path: Path, create_tables: Callable[[Any], None]) -> Query:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    create_tables(connection)
    lock = threading.Lock()

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with lock:
            return connection.execute(sql, tuple(params)).fetchall()

    return query


def postgres_query(dsn: str, create_tables: Callable[[Any], None]) -> Query:
    connection = psycopg.connect(dsn, autocommit=True)
    create_tables(connection)
    lock = threading.Lock()

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with lock:
            return connection.execute(for_postgres(sql), tuple(params)).fetchall()

    return query
