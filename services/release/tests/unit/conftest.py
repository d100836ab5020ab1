"""Fixtures for release unit tests: an in-memory event store, a settable clock, batch facts
of one fresh batch (started, harvested, patient enrolled) and the signers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from v2v_release.application import ReleaseApplication
from v2v_testkit.release import Clock, InMemoryReleaseFacts, build_app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def facts() -> InMemoryReleaseFacts:
    known = InMemoryReleaseFacts()
    known.started()
    known.harvested()
    known.enrolled()
    return known


@pytest.fixture
def app(clock: Clock, facts: InMemoryReleaseFacts) -> Iterator[ReleaseApplication]:
    application = build_app(facts, clock)
    yield application
    application.close()
