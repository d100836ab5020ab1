"""Fixtures for infusion unit tests: in-memory event stores, a settable clock, facts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from v2v_infusion.application import InfusionApplication
from v2v_testkit.infusion import Clock, InMemoryFacts, build_app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def facts() -> InMemoryFacts:
    return InMemoryFacts()


@pytest.fixture
def app(clock: Clock, facts: InMemoryFacts) -> Iterator[InfusionApplication]:
    application = build_app(facts, clock)
    yield application
    application.close()
    application.unpublished.close()
