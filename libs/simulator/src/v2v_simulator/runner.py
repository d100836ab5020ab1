"""Run many journeys concurrently (a small thread pool), with a progress display. The first
journey that fails stops the others at their next step; the failure names its patient, step
and error. Slots are opened at the GMP sites first, for every booking the plans will make."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from v2v.manufacturing.v1 import manufacturing_service_pb2 as mfg_pb
from v2v_simulator.clients import call
from v2v_simulator.journey.calendar import plan_calendar
from v2v_simulator.journey.context import Journey, JourneyFailed, Stopped, World
from v2v_simulator.journey.flow import run_journey
from v2v_simulator.scenarios import PatientPlan

DEFAULT_WORKERS = 6


@dataclass
class RunResult:
    journeys: list[Journey] = field(default_factory=list)
    failure: JourneyFailed | None = None
    elapsed_s: float = 0.0

    @property
    def steps(self) -> int:
        return sum(journey.steps_done for journey in self.journeys)


def open_slots(world: World, journeys: Sequence[Journey]) -> None:
    """Capacity at every GMP site and day for the bookings these journeys make (on top of the
    bookings already there): one per batch, on the day it starts."""
    needed: Counter[tuple[str, str]] = Counter()
    for journey in journeys:
        for cycle in range(1, len(journey.calendar.cycles) + 1):
            needed[(journey.plan.hospital.gmp.site_id, journey.calendar.slot_date(cycle))] += 1
    gmps = {gmp.site_id: gmp for gmp in world.consortium.gmp_sites}
    for (site_id, day), count in sorted(needed.items()):
        station = world.clients.manufacturing(site_id)
        calendar = call(
            station.GetSlotCalendar,
            mfg_pb.GetSlotCalendarRequest(manufacturing_site_id=site_id, slot_date=day),
        )
        capacity = max(calendar.capacity, calendar.booked_count + count)
        if capacity != calendar.capacity:
            call(
                station.SetSlotCapacity,
                mfg_pb.SetSlotCapacityRequest(
                    operator=gmps[site_id].operator,
                    manufacturing_site_id=site_id,
                    slot_date=day,
                    capacity=capacity,
                ),
            )


def run_journeys(
    world: World,
    plans: Sequence[PatientPlan],
    workers: int = DEFAULT_WORKERS,
    console: Console | None = None,
    show_progress: bool = True,
) -> RunResult:
    started = time.monotonic()
    now = datetime.now(UTC)
    journeys = [Journey(plan, world, plan_calendar(plan, now)) for plan in plans]
    open_slots(world, journeys)
    result = RunResult()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show_progress) as progress:
        patients = progress.add_task("patients done", total=len(plans))
        steps = progress.add_task("API steps", total=None)
        listener = world.on_step

        def on_step(name: str) -> None:
            progress.advance(steps)
            listener(name)

        world.on_step = on_step
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="journey")
        futures = {pool.submit(run_journey, journey): journey.plan for journey in journeys}
        try:
            for future in as_completed(futures):
                _collect(future, futures[future], world, result)
                progress.advance(patients)
        except BaseException:  # Ctrl-C: the journeys stop at their next step
            world.stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            world.on_step = listener
    result.elapsed_s = time.monotonic() - started
    return result


def _collect(future: Future[Journey], plan: PatientPlan, world: World, result: RunResult) -> None:
    try:
        result.journeys.append(future.result())
    except Stopped:
        return
    except JourneyFailed as failure:
        result.failure = result.failure or failure
        world.stop.set()
    except Exception as error:  # noqa: BLE001 - a bug in a step: report it like a failure
        result.failure = result.failure or JourneyFailed(plan.label, "(internal)", repr(error))
        world.stop.set()
