"""Fixtures for manufacturing unit tests: in-memory event stores, a settable clock, intake facts
(two patients enrolled at HOSPITAL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_testkit.manufacturing import COI, OTHER_COI, Clock, InMemoryManufacturingFacts, build_app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def facts() -> InMemoryManufacturingFacts:
    """Intake's facts: the patients of COI and OTHER_COI enrolled at HOSPITAL."""
    known = InMemoryManufacturingFacts()
    known.enrolled(COI)
    known.enrolled(OTHER_COI)
    return known


@pytest.fixture
def app(clock: Clock, facts: InMemoryManufacturingFacts) -> Iterator[ManufacturingApplication]:
    application = build_app(facts, clock)
    yield application
    application.close()
    application.unpublished.close()
