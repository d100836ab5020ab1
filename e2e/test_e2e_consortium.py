"""Six patients through the whole system, as the consortium's systems and couriers drive it
(gRPC over mTLS, courier HTTP), on PostgreSQL and Kafka, while the broker is stopped and
started again mid-journey and, later, the manufacturing service is restarted between two
steps.

At the end every chain is complete (infused) in the projection core, no event is lost (the
events each service recorded in its own store are all on its topic) and `v2v audit verify`
finds the history clean. The special cases of the plans (second apheresis after a failed
batch, OOS release, sterility failure after provisional release, temperature excursion,
wrong wristband at the bedside) show up as the alerts they should, and only those.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg import sql

from v2v_platform.envelope import decode
from v2v_platform.testing.kafka_topics import read_topic
from v2v_simulator.audit import verify
from v2v_simulator.consumers import wait_assigned
from v2v_simulator.runner import RunResult, run_journeys
from v2v_simulator.running import RunningConsortium
from v2v_simulator.scenarios import SPECIALS, plan_patients
from v2v_simulator.summary import settled
from v2v_simulator.system import System

pytestmark = pytest.mark.integration
PATIENTS = 6
# The broker restarts once batches run (bags, products and releases are still to travel);
# manufacturing restarts (between two steps of every journey) once products await release.
BROKER_RESTART_AFTER = ("start batch", 2)
SERVICE_RESTART_AFTER = ("harvest product", 4)
CONTEXTS = ("intake", "manufacturing", "logistics", "release", "infusion")
DEADLINE_S = 150.0


class StepCounter:
    """Counts the journeys' steps by name; the test waits for a step to have happened."""

    def __init__(self) -> None:
        self.done: Counter[str] = Counter()
        self._condition = threading.Condition()

    def __call__(self, name: str) -> None:
        with self._condition:
            self.done[name] += 1
            self._condition.notify_all()

    @property
    def total(self) -> int:
        return sum(self.done.values())

    def wait_for(
        self, step: str, times: int, runner: threading.Thread, outcome: dict[str, Any]
    ) -> int:
        """Block until `step` was done `times` times; the steps done so far."""
        with self._condition:
            reached = self._condition.wait_for(
                lambda: self.done[step] >= times or not runner.is_alive(), timeout=DEADLINE_S
            )
            assert reached, f"'{step}' not done {times} times within {DEADLINE_S:g}s"
            assert runner.is_alive(), f"the journeys ended before '{step}' x{times}: {outcome}"
            return self.total


def start_journeys(running: RunningConsortium, outcome: dict[str, Any]) -> threading.Thread:
    plans = plan_patients(running.system.consortium, PATIENTS, seed=2026)

    def journeys() -> None:
        try:
            outcome["result"] = run_journeys(running.world, plans, show_progress=False)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    runner = threading.Thread(target=journeys, name="journeys")
    runner.start()
    return runner


def recorded_events(system: System, context: str) -> int:
    """Events the services of `context` stored in their published application's event store."""
    total = 0
    for process in system.services.values():
        if process.module != f"v2v_{context}":
            continue
        table = sql.Identifier(f"{context}application_events")
        with psycopg.connect(process.env["V2V_POSTGRES_DSN"]) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        total += int(row[0]) if row else 0
    return total


def published_events(bootstrap: str, context: str) -> int:
    records = read_topic(bootstrap, f"v2v.{context}.events.v1")
    return len({decode(record.value).event_id for _, record in records})


def no_event_lost(running: RunningConsortium) -> dict[str, tuple[int, int]]:
    """(recorded, published) per context, once they agree (relays may still be publishing)."""
    deadline = time.monotonic() + 60
    while True:
        counts = {
            context: (
                recorded_events(running.system, context),
                published_events(running.bootstrap, context),
            )
            for context in CONTEXTS
        }
        if all(recorded == published for recorded, published in counts.values()):
            return counts
        assert time.monotonic() < deadline, f"recorded vs published events per topic: {counts}"
        time.sleep(0.5)


def test_six_patients_through_a_service_restart_and_a_broker_restart(
    consortium_system: RunningConsortium,
) -> None:
    running = consortium_system
    world, system = running.world, running.system
    counter = StepCounter()
    world.on_step = counter
    outcome: dict[str, Any] = {}
    runner = start_journeys(running, outcome)
    try:
        at = counter.wait_for(*BROKER_RESTART_AFTER, runner, outcome)
        running.broker.down()
        assert running.broker.up() == running.bootstrap, "the broker came back on another port"
        print(f"\nbroker restarted after step {at}")
        groups = system.consumer_groups(system.services.values())
        stuck = wait_assigned(running.bootstrap, groups, timeout_s=60)
        assert not stuck, f"consumers not consuming after the broker restart: {stuck}"
        at = counter.wait_for(*SERVICE_RESTART_AFTER, runner, outcome)
        with world.gate.paused():  # between two steps of every journey
            system.restart("manufacturing", system.consortium.gmp_sites[0].site_id)
        print(f"manufacturing restarted after step {at}")
    finally:
        runner.join(timeout=DEADLINE_S)
    assert "error" not in outcome, outcome.get("error")
    result: RunResult = outcome["result"]
    assert result.failure is None, f"{result.failure}\n{system.deaths()}"
    assert len(result.journeys) == PATIENTS
    assert counter.total > at, "the manufacturing restart was not mid-journey"
    system.check_alive()

    chains = settled(running.clients, result.journeys, timeout_s=120)
    assert {chain.stage for chain in chains.values()} == {"infused"}
    alerted = Counter(alert.kind for chain in chains.values() for alert in chain.alerts)
    print(f"alerts: {dict(alerted)}")

    counts = no_event_lost(running)
    print(f"events recorded = published per context: {counts}")
    verdict = verify(system.pki, running.bootstrap)
    assert verdict.clean, verdict.output[-3000:] + verdict.errors[-2000:]
    assert verdict.last_line.startswith("clean")
    specials = {name for journey in result.journeys for name in journey.plan.specials}
    assert specials == set(SPECIALS)
    assert set(alerted) == {"identity-mismatch", "temperature-excursion"}
