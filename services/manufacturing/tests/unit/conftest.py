"""Fixtures for manufacturing unit tests: in-memory event stores, a settable clock, intake facts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_testkit.manufacturing import Clock, InMemoryManufacturingFacts, build_app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def facts() -> InMemoryManufacturingFacts:
    return InMemoryManufacturingFacts()


@pytest.fixture
def app(clock: Clock, facts: InMemoryManufacturingFacts) -> Iterator[ManufacturingApplication]:
    application = build_app(facts, clock)
    yield application
    application.close()
    application.unpublished.close()
