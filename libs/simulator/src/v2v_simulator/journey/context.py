"""What a patient's journey carries from step to step, and what all journeys share: the API
clients, the COIs enrolled so far, a stop flag (one journey failed, or Ctrl-C) and a gate
that pauses every journey between two steps (to restart a service or the broker).

Every step runs in `journey.step(name)`: an unexpected API error becomes a `JourneyFailed`
naming the patient, the step and the error. Waiting for a fact that travels through Kafka is
polling until a deadline (`journey.poll`), never a fixed sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
import httpx

from v2v_simulator.clients import Clients, CourierRefused, describe
from v2v_simulator.consortium import Consortium
from v2v_simulator.journey.calendar import Calendar
from v2v_simulator.scenarios import PatientPlan

T = TypeVar("T")
POLL_INTERVAL_S = 0.1
STILL_UNKNOWN_PREFIXES = ("unknown-unit", "the treating site of COI")


class JourneyFailed(RuntimeError):
    def __init__(self, patient: str, step: str, problem: str) -> None:
        super().__init__(f"{patient}: step '{step}' failed: {problem}")
        self.patient, self.step, self.problem = patient, step, problem


class Stopped(RuntimeError):
    """The run stopped (another journey failed, or Ctrl-C) before this journey ended."""


class Unexpected(RuntimeError):
    """A service answered, but not as the journey expected (the message says how)."""


class Gate:
    """Journeys pass it at every step; `paused()` holds them all between two steps."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._open = True
        self._active = 0

    def enter(self) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._open)
            self._active += 1

    def leave(self) -> None:
        with self._condition:
            self._active -= 1
            self._condition.notify_all()

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._condition:
            self._open = False
            self._condition.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            with self._condition:
                self._open = True
                self._condition.notify_all()


@dataclass
class World:
    consortium: Consortium
    clients: Clients
    fact_timeout_s: float = 60.0
    stop: threading.Event = field(default_factory=threading.Event)
    gate: Gate = field(default_factory=Gate)
    on_step: Callable[[str], None] = lambda _: None
    enrolled: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_enrolment(self, coi: str) -> None:
        with self._lock:
            self.enrolled.append(coi)

    def another_patient(self, coi: str) -> str | None:
        """The COI of another patient enrolled so far, if any."""
        with self._lock:
            others = [c for c in self.enrolled if c != coi]
        return others[-1] if others else None


@dataclass
class Journey:
    plan: PatientPlan
    world: World
    calendar: Calendar  # when each step happened (clinical times)
    coi: str = ""
    slot_id: str = ""
    apheresis_dins: list[str] = field(default_factory=list)
    batch_id: str = ""
    product_dins: list[str] = field(default_factory=list)
    steps_done: int = 0
    failure_ids: list[str] = field(default_factory=list)

    @property
    def who(self) -> str:
        return f"{self.plan.label} {self.coi}".strip()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.world.stop.is_set():
            raise Stopped(f"{self.who}: stopped before '{name}'")
        self.world.gate.enter()
        try:
            yield
        except grpc.RpcError as error:
            raise JourneyFailed(self.who, name, describe(error)) from None
        except (CourierRefused, Unexpected, TimeoutError) as error:
            raise JourneyFailed(self.who, name, str(error)) from None
        except httpx.HTTPError as error:
            raise JourneyFailed(self.who, name, f"HTTP: {error!r}") from None
        finally:
            self.world.gate.leave()
        self.steps_done += 1
        self.world.on_step(name)

    def poll(self, probe: Callable[[], T | None], what: str) -> T:
        """`probe`'s first answer that is not None (or False), within the fact deadline."""
        deadline = time.monotonic() + self.world.fact_timeout_s
        while True:
            if self.world.stop.is_set():
                raise Stopped(f"{self.who}: stopped while waiting for {what}")
            value = probe()
            if value is not None and value is not False:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self.world.fact_timeout_s:g}s for {what}")
            time.sleep(POLL_INTERVAL_S)

    def once_known(self, attempt: Callable[[], T], what: str) -> T:
        """`attempt()` retried while the service has not yet learnt the facts it needs from
        Kafka (NOT_FOUND, or a refusal saying the unit or site is not known yet)."""

        def probe() -> T | None:
            try:
                return attempt()
            except grpc.RpcError as error:
                if still_unknown(error):
                    return None
                raise

        return self.poll(probe, what)


def still_unknown(error: grpc.RpcError) -> bool:
    if error.code() == grpc.StatusCode.NOT_FOUND:
        return True
    details = error.details() or ""
    return error.code() == grpc.StatusCode.FAILED_PRECONDITION and details.startswith(
        STILL_UNKNOWN_PREFIXES
    )
