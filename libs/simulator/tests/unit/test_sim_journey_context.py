"""Steps name the patient, the step and the error; polling ends at a deadline or at a stop;
the gate holds every journey between two steps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from v2v_simulator.clients import Clients
from v2v_simulator.consortium import Consortium
from v2v_simulator.journey.calendar import plan_calendar
from v2v_simulator.journey.context import Gate, Journey, JourneyFailed, Stopped, World
from v2v_simulator.scenarios import plan_patients

CONSORTIUM = Consortium.sized()


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class NoTargets:
    def grpc_target(self, context: str, site_id: str) -> str:
        raise AssertionError("no service in a unit test")

    def http_base(self, context: str, site_id: str) -> str:
        raise AssertionError("no service in a unit test")


@pytest.fixture
def journey() -> Journey:
    clients = Clients(Path("/nonexistent"), NoTargets(), CONSORTIUM, {})
    world = World(CONSORTIUM, clients, fact_timeout_s=0.3)
    [plan] = plan_patients(CONSORTIUM, 1, seed=1)
    return Journey(plan, world, plan_calendar(plan, datetime.now(UTC)), coi="CHA123426000001")


def test_an_api_error_in_a_step_names_the_patient_the_step_and_the_error(
    journey: Journey,
) -> None:
    with pytest.raises(JourneyFailed) as failed, journey.step("receive bag at GMP"):
        raise FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "receipt refused (coi-mismatch)")
    message = str(failed.value)
    assert message.startswith("patient 1 (HOSP-")
    assert "CHA123426000001" in message
    assert "step 'receive bag at GMP' failed: FAILED_PRECONDITION: receipt refused" in message
    assert journey.steps_done == 0


def test_a_step_that_succeeds_is_counted_and_reported(journey: Journey) -> None:
    seen: list[str] = []
    journey.world.on_step = seen.append
    with journey.step("enrol patient"):
        pass
    assert (journey.steps_done, seen) == (1, ["enrol patient"])


def test_waiting_for_a_fact_ends_at_the_deadline_with_what_was_awaited(journey: Journey) -> None:
    with pytest.raises(JourneyFailed) as failed, journey.step("bags expected at GMP"):
        journey.poll(lambda: None, "intake's packaged bags to reach manufacturing")
    assert "waited 0.3s for intake's packaged bags" in str(failed.value)


def test_once_known_retries_while_the_service_does_not_know_yet(journey: Journey) -> None:
    answers: Iterator[FakeRpcError | str] = iter(
        [
            FakeRpcError(grpc.StatusCode.NOT_FOUND, "no batch"),
            FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "unknown-unit: not known here"),
            "created",
        ]
    )

    def attempt() -> str:
        answer = next(answers)
        if isinstance(answer, FakeRpcError):
            raise answer
        return answer

    assert journey.once_known(attempt, "the units at logistics") == "created"


def test_once_known_does_not_hide_a_real_refusal(journey: Journey) -> None:
    def attempt() -> str:
        raise FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "wrong-custodian: held by X")

    with pytest.raises(FakeRpcError):
        journey.once_known(attempt, "the units at logistics")


def test_a_stopped_run_stops_the_journey_at_its_next_step_and_while_waiting(
    journey: Journey,
) -> None:
    journey.world.stop.set()
    with pytest.raises(Stopped), journey.step("label bags"):
        pass
    with pytest.raises(Stopped):
        journey.poll(lambda: None, "anything")


def test_the_gate_holds_new_steps_until_the_pause_ends_and_waits_for_running_ones() -> None:
    gate = Gate()
    gate.enter()  # a step in flight
    paused = threading.Event()
    resumed = threading.Event()

    def pause() -> None:
        with gate.paused():
            paused.set()
            resumed.wait(5)

    pauser = threading.Thread(target=pause)
    pauser.start()
    assert not paused.wait(0.2), "the pause began while a step was in flight"
    gate.leave()
    assert paused.wait(5)
    entered = threading.Event()

    def step() -> None:
        gate.enter()
        entered.set()

    stepper = threading.Thread(target=step)
    stepper.start()
    assert not entered.wait(0.2), "a step began during the pause"
    resumed.set()
    assert entered.wait(5)
    pauser.join(5)
    stepper.join(5)
