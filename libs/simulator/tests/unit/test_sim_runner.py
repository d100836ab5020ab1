"""Running journeys: slots opened for every booking, the first failure stops the rest and is
reported with its patient and step, internal errors are reported the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v_simulator import runner
from v2v_simulator.clients import Clients
from v2v_simulator.consortium import Consortium
from v2v_simulator.journey.calendar import plan_calendar
from v2v_simulator.journey.context import Journey, JourneyFailed, Stopped, World
from v2v_simulator.scenarios import plan_patients

CONSORTIUM = Consortium.sized()


class FakeStation:
    """A manufacturing service's slot calendar, as far as `open_slots` uses it."""

    def __init__(self) -> None:
        self.capacity: dict[str, int] = {"booked-day": 1}
        self.booked: dict[str, int] = {"booked-day": 1}

    def GetSlotCalendar(self, request: Any, **_: Any) -> pb.GetSlotCalendarResponse:
        booked = [
            pb.BookedSlot(slot_id=str(n)) for n in range(self.booked.get(request.slot_date, 0))
        ]
        return pb.GetSlotCalendarResponse(
            capacity=self.capacity.get(request.slot_date, 0),
            booked=booked,
            booked_count=len(booked),
        )

    def SetSlotCapacity(self, request: Any, **_: Any) -> pb.SetSlotCapacityResponse:
        self.capacity[request.slot_date] = request.capacity
        return pb.SetSlotCapacityResponse(capacity=request.capacity)


class FakeClients(Clients):
    def __init__(self, station: FakeStation) -> None:
        super().__init__(Path("/nonexistent"), None, CONSORTIUM, {})  # type: ignore[arg-type]
        self.station = station

    def manufacturing(self, gmp: str) -> Any:
        return self.station


def test_slots_are_opened_for_every_booking_the_plans_will_make() -> None:
    station = FakeStation()
    world = World(CONSORTIUM, FakeClients(station))
    now = datetime.now(UTC)
    plans = plan_patients(CONSORTIUM, 30, seed=7)
    journeys = [Journey(plan, world, plan_calendar(plan, now)) for plan in plans]
    runner.open_slots(world, journeys)
    bookings = sum(2 if plan.second_apheresis else 1 for plan in plans)
    assert sum(station.capacity.values()) - 1 == bookings
    days = {journey.calendar.cycles[0].batch_started.date().isoformat() for journey in journeys}
    assert days <= set(station.capacity)


def test_the_first_failure_stops_the_run_and_names_patient_and_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def journey_of(journey: Journey) -> Journey:
        if journey.plan.number == 2:
            raise JourneyFailed(journey.plan.label, "receive bag at GMP", "FAILED_PRECONDITION")
        if journey.world.stop.wait(5):
            raise Stopped("stopped")
        return journey

    monkeypatch.setattr(runner, "run_journey", journey_of)
    monkeypatch.setattr(runner, "open_slots", lambda world, plans: None)
    world = World(CONSORTIUM, FakeClients(FakeStation()))
    result = runner.run_journeys(world, plan_patients(CONSORTIUM, 4, seed=1), show_progress=False)
    assert result.failure is not None
    assert "patient 2 (" in str(result.failure)
    assert "step 'receive bag at GMP' failed: FAILED_PRECONDITION" in str(result.failure)
    assert result.journeys == [] and world.stop.is_set()


def test_a_bug_in_a_step_is_reported_like_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(journey: Journey) -> Journey:
        raise KeyError("din")

    monkeypatch.setattr(runner, "run_journey", broken)
    monkeypatch.setattr(runner, "open_slots", lambda world, plans: None)
    world = World(CONSORTIUM, FakeClients(FakeStation()))
    result = runner.run_journeys(world, plan_patients(CONSORTIUM, 1, seed=1), show_progress=False)
    assert result.failure is not None
    assert "(internal)" in str(result.failure) and "KeyError" in str(result.failure)


def test_every_journey_that_ends_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    def done(journey: Journey) -> Journey:
        journey.world.on_step("enrol patient")
        journey.steps_done = 3
        return journey

    monkeypatch.setattr(runner, "run_journey", done)
    monkeypatch.setattr(runner, "open_slots", lambda world, plans: None)
    seen: list[str] = []
    world = World(CONSORTIUM, FakeClients(FakeStation()), on_step=seen.append)
    result = runner.run_journeys(world, plan_patients(CONSORTIUM, 5, seed=1), show_progress=False)
    assert result.failure is None and len(result.journeys) == 5 and result.steps == 15
    assert seen == ["enrol patient"] * 5
