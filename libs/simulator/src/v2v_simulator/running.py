"""A consortium whose services run (for tests that drive it and disturb it)."""

from __future__ import annotations

from dataclasses import dataclass

from v2v_simulator.broker import LocalBroker
from v2v_simulator.clients import Clients
from v2v_simulator.journey.context import Journey, World
from v2v_simulator.system import System


@dataclass
class RunningConsortium:
    system: System
    broker: LocalBroker
    bootstrap: str
    clients: Clients
    world: World


@dataclass(frozen=True)
class DemoRun:
    """A consortium after some of the demo's patients went through it, their chains settled."""

    running: RunningConsortium
    journeys: list[Journey]
