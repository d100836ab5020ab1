"""The service kernel: site checks, clinical times, find/get, retries, identifier parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from v2v_platform.attribution import Attribution
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound
from v2v_platform.service_application import (
    CLOCK_SKEW,
    NotWired,
    ServiceApplication,
    UnpublishedRecords,
    coi_or_problem,
    din_or_problem,
    parse_coi,
    parse_din,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Counter(Aggregate):
    @event("Opened")
    def __init__(self) -> None:
        self.count = 0

    @event("Counted")
    def count_one(self) -> None:
        self.count += 1


class Other(Aggregate):
    @event("Made")
    def __init__(self) -> None:
        pass


class Records(UnpublishedRecords):
    pass


class App(ServiceApplication[Records]):
    context = "testing"


def by(site_id: str = "HOSP-A") -> Attribution:
    return Attribution(user_id="u-1", printed_name="Ann", role="collection", site_id=site_id)


def app(records: Records | None = None) -> App:
    return App(site_id="HOSP-A", unpublished=records, clock=lambda: NOW, max_attempts=3)


def test_a_command_from_another_site_is_forbidden_and_names_both_sites() -> None:
    with pytest.raises(Forbidden, match="records for site HOSP-A, not HOSP-B"):
        app().check_local(by("HOSP-B"))


def test_a_local_command_is_attributed_as_given() -> None:
    checked = app().check_local(by())
    assert (checked.site_id, checked.user_id) == ("HOSP-A", "u-1")


def test_authored_events_carry_this_site() -> None:
    assert app().authored(by("LOGI-9")).site_id == "HOSP-A"


def test_without_its_records_the_application_cannot_command() -> None:
    with pytest.raises(NotWired, match="built without its unpublished records"):
        _ = app().unpublished
    records = Records()
    assert app(records).unpublished is records


def test_a_clinical_time_is_kept_as_given_in_utc() -> None:
    given = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert app().when(given, "collected_at") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert app().when(None, "collected_at") == NOW


def test_a_clinical_time_within_the_clock_skew_is_accepted_beyond_it_refused() -> None:
    assert app().when(NOW + CLOCK_SKEW, "scanned_at") == NOW + CLOCK_SKEW
    with pytest.raises(InvalidInput, match=r"scanned_at .* is in the future"):
        app().when(NOW + CLOCK_SKEW + timedelta(seconds=1), "scanned_at")


def test_a_clinical_time_without_a_zone_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput, match="thaw_started_at must carry a time zone"):
        app().when(datetime(2026, 3, 1, 9, 0), "thaw_started_at")


def test_find_get_and_the_wrong_kind() -> None:
    application = app()
    counter = Counter()
    application.save(counter)
    assert application.find(Counter, counter.id) is not None
    assert application.find(Counter, uuid4()) is None
    with pytest.raises(NotFound, match="no such counter"):
        application.get(Counter, uuid4(), "counter")
    with pytest.raises(NotFound, match="is not a Other"):
        application.find(Other, counter.id)


def test_retrying_reads_again_after_a_lost_race_and_gives_up_with_conflict() -> None:
    application = app()
    counter = Counter()
    application.save(counter)
    stale = application.get(Counter, counter.id, "counter")
    winner = application.get(Counter, counter.id, "counter")
    winner.count_one()
    application.save(winner)
    attempts: list[int] = []

    def attempt() -> int:
        fresh = stale if not attempts else application.get(Counter, counter.id, "counter")
        attempts.append(fresh.version)
        fresh.count_one()
        application.save(fresh)
        return fresh.count

    assert application.retrying(attempt) == 2
    assert len(attempts) == 2

    def always_loses() -> None:
        raise IntegrityError("lost")

    with pytest.raises(Conflict, match="too many concurrent changes"):
        application.retrying(always_loses)


def test_save_or_conflict_names_what_changed() -> None:
    application = app()
    counter = Counter()
    application.save(counter)
    first = application.get(Counter, counter.id, "counter")
    second = application.get(Counter, counter.id, "counter")
    first.count_one()
    second.count_one()
    application.save_or_conflict(first, what="counter")
    with pytest.raises(Conflict, match="counter was changed concurrently"):
        application.save_or_conflict(second, what="counter")


def test_identifiers_from_requests() -> None:
    assert str(parse_coi(" CHA123425000017 ")) == "CHA123425000017"
    with pytest.raises(InvalidInput):
        parse_coi("CHA1234")
    with pytest.raises(InvalidInput):
        parse_din("not-a-din")
    din, problem = din_or_problem("nope")
    assert din is None and problem
    coi, problem = coi_or_problem("CHA123425000017")
    assert coi is not None and problem == ""
