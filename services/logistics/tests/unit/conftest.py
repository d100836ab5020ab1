"""Fixtures for logistics unit tests: in-memory event stores, a settable clock, unit facts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from v2v_logistics.application import LogisticsApplication
from v2v_testkit.logistics import Clock, InMemoryFacts, build_app


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
