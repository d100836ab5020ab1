"""Fixtures for logistics unit tests: in-memory event stores, a settable clock, unit facts;
and the whole service (HTTP app, gRPC on demand) over a module's `pki` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from v2v_logistics.adapters.courier_tokens import CourierTokens, sqlite_tokens
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.bootstrap import LogisticsService, bootstrap
from v2v_logistics.settings import LogisticsSettings
from v2v_testkit.logistics import SERVICE_SITE, Clock, InMemoryFacts, build_app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def facts() -> InMemoryFacts:
    return InMemoryFacts()


@pytest.fixture
def app(clock: Clock, facts: InMemoryFacts) -> Iterator[LogisticsApplication]:
    application = build_app(facts, clock)
    yield application
    application.close()
    application.unpublished.close()


@pytest.fixture
def tokens(tmp_path: Path) -> CourierTokens:
    return sqlite_tokens(tmp_path / "tokens.sqlite")


@pytest.fixture
def service(pki: Path, facts: InMemoryFacts, tokens: CourierTokens) -> Iterator[LogisticsService]:
    """The service at LOGI-1 on in-memory stores; `pki`: the test module's fixture."""
    settings = LogisticsSettings(site_id=SERVICE_SITE, pki_dir=pki)
    running = bootstrap(settings, facts=facts, tokens=tokens, clock=Clock())
    yield running
    running.stop()


@pytest.fixture
def client(service: LogisticsService) -> TestClient:
    return TestClient(service.http_app, raise_server_exceptions=False)
