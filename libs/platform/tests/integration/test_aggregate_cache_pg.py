"""The kernel's aggregate cache on PostgreSQL (issue 18 item 2): two application instances on
one database (two service processes) see each other's writes through their caches
(fast-forward), a command that lost the race is retried from the winner's state, and a save
that failed leaves the cache as stored."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from v2v_platform.aggregate_cache import CachedRepository
from v2v_platform.config import EventStoreSettings
from v2v_platform.service_application import ServiceApplication, UnpublishedRecords

pytestmark = pytest.mark.integration


class Tally(Aggregate):
    @event("Opened")
    def __init__(self) -> None:
        self.seen: list[int] = []

    @event("Counted")
    def count_one(self) -> None:
        self.seen.append(len(self.seen) + 1)


class TallyApp(ServiceApplication[UnpublishedRecords]):
    context = "testing"


def counted(application: TallyApp, tally_id: UUID) -> list[int]:
    tally = application.get(Tally, tally_id, "tally")
    tally.count_one()
    application.save(tally)
    return tally.seen


def test_two_instances_on_one_postgresql_database_share_writes_through_their_caches(
    postgres_database: Any,
) -> None:
    env = EventStoreSettings(postgres_dsn=postgres_database.dsn).eventsourcing_env()
    first, second = TallyApp(env, site_id="A"), TallyApp(env, site_id="A")
    try:
        assert isinstance(first.repository, CachedRepository)
        tally = Tally()
        first.save(tally)
        for _ in range(3):  # each reads the other's write through its cache
            counted(first, tally.id)
            counted(second, tally.id)
        assert first.get(Tally, tally.id, "tally").seen == [1, 2, 3, 4, 5, 6]
        assert tally.id in first.repository.cached_ids()

        stale = first.get(Tally, tally.id, "tally")
        counted(second, tally.id)
        stale.count_one()
        with pytest.raises(IntegrityError):
            first.save(stale)
        assert first.get(Tally, tally.id, "tally").seen == [1, 2, 3, 4, 5, 6, 7]

        attempts: list[int] = []

        def attempt() -> list[int]:
            mine = first.get(Tally, tally.id, "tally")
            attempts.append(len(mine.seen))
            if len(attempts) == 1:
                counted(second, tally.id)  # the other process wins this version
            mine.count_one()
            first.save(mine)
            return mine.seen

        assert first.retrying(attempt) == list(range(1, 10))
        assert attempts == [7, 8]
        assert second.get(Tally, tally.id, "tally").seen == list(range(1, 10))
    finally:
        first.close()
        second.close()
