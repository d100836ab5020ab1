"""pytest plugin: real Kafka and PostgreSQL for integration tests.

Loaded with ``-p v2v_platform.testing.pytest_plugin``. Fixtures:

- ``kafka_bootstrap`` (session): ``host:port`` of a Kafka broker;
- ``postgres_dsn`` (session): DSN of a PostgreSQL role that may create databases;
- ``postgres_database`` (function): a fresh database on that server, dropped afterwards.

How each is resolved is in :mod:`v2v_platform.testing.infra`. When nothing can provide a
service the fixture fails (it never skips) and says how to provide it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from v2v_platform.testing import infra
from v2v_platform.testing.infra import InfraUnavailable, PostgresDatabase, Resolved

__all__ = ["kafka_bootstrap", "postgres_database", "postgres_dsn"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: needs a real Kafka broker and/or PostgreSQL"
        " (resolved by the v2v pytest plugin)",
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """Bootstrap address ``host:port`` of a real Kafka broker."""
    yield from _provide(request, "kafka", infra.resolve_kafka)


@pytest.fixture(scope="session")
def postgres_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a real PostgreSQL server, for a role allowed to create databases."""
    yield from _provide(request, "postgres", infra.resolve_postgres)


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[PostgresDatabase]:
    """A fresh, uniquely named database on the server, dropped (with FORCE) afterwards."""
    database = infra.create_database(postgres_dsn)
    try:
        yield database
    finally:
        infra.drop_database(postgres_dsn, database.dbname)


def _provide(
    request: pytest.FixtureRequest, label: str, resolver: Callable[[Path | None], Resolved]
) -> Iterator[str]:
    resolved = _resolve(request, resolver)
    where = infra.redact(resolved.address)
    _announce(request.config, f"v2v infra: {label} at {where} via {resolved.how}")
    try:
        yield resolved.address
    finally:
        resolved.close()


def _resolve(
    request: pytest.FixtureRequest, resolver: Callable[[Path | None], Resolved]
) -> Resolved:
    try:
        return resolver(infra.find_repo_root(request.config.rootpath))
    except InfraUnavailable as error:
        problem = str(error)
    pytest.fail(problem, pytrace=False)  # outside the except block: no chained traceback


def _announce(config: pytest.Config, line: str) -> None:
    """Show which source was used, on the terminal even while output is being captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
