"""Fixtures for manufacturing unit tests: in-memory event store, a settable clock, intake facts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.testing import FIN, GMP, Clock, InMemoryIntakeFacts


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def facts() -> InMemoryIntakeFacts:
    return InMemoryIntakeFacts()


@pytest.fixture
def app(clock: Clock, facts: InMemoryIntakeFacts) -> Iterator[ManufacturingApplication]:
    application = ManufacturingApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        site_id=GMP,
        intake_facts=facts,
        clock=clock,
        fin=FIN,
    )
    yield application
    application.close()
