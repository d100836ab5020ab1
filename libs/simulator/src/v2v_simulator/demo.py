"""`make demo`: set up what is missing, start the broker and every service, run the simulated
consortium, print the projection's summary and the auditor's verdict, stop everything.

Everything lives under the data directory (default `.v2v-data`): `pki/`, `stores/` (SQLite
event stores; PostgreSQL databases instead when V2V_POSTGRES_DSN is set), `kafka/` (the
broker's state), `logs/<service>-<site>.log`, and `simulator.json` (how many patients so far,
so a second run adds new patients to the same consortium). When `make up` runs the consortium
of the data directory (`up.json`), the demo adds its patients to it and leaves it running.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console

from v2v_simulator.audit import verify
from v2v_simulator.broker import LocalBroker
from v2v_simulator.clients import Clients
from v2v_simulator.consortium import Consortium
from v2v_simulator.journey.context import World
from v2v_simulator.runner import DEFAULT_WORKERS, run_journeys
from v2v_simulator.scenarios import plan_patients
from v2v_simulator.setup import ensure_courier_tokens, ensure_pki, ensure_signers
from v2v_simulator.stores import Stores
from v2v_simulator.summary import read_summary, render, settled
from v2v_simulator.system import System
from v2v_simulator.up_record import UpRecord, attach, how

STATE_FILE = "simulator.json"
PROJECTION_CATCH_UP_S = 120.0


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says why and what to do."""


@dataclass
class DemoState:
    hospitals: int = 2
    gmp_sites: int = 1
    seed: int = 7
    patients_so_far: int = 0
    in_house: int = 0  # a data directory from before in-house sites has none

    def consortium(self) -> Consortium:
        return Consortium.sized(self.hospitals, self.gmp_sites, self.in_house)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.hospitals, self.gmp_sites, self.in_house)

    @classmethod
    def load(cls, data_dir: Path) -> DemoState | None:
        path = data_dir / STATE_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None

    def save(self, data_dir: Path) -> None:
        (data_dir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))


@dataclass(frozen=True)
class DemoOptions:
    patients: int = 30
    data_dir: Path = Path(".v2v-data")
    hospitals: int = 2
    gmp_sites: int = 1
    in_house: int = 1
    seed: int = 7
    workers: int = DEFAULT_WORKERS


def load_state(options: DemoOptions, data_dir: Path) -> DemoState:
    """The data directory's consortium (a new one as `options` describe when it has none);
    DemoError when `options` describe another one."""
    state = DemoState.load(data_dir)
    if state is None:
        return DemoState(options.hospitals, options.gmp_sites, options.seed, 0, options.in_house)
    if state.shape != (options.hospitals, options.gmp_sites, options.in_house):
        raise DemoError(
            f"{data_dir} holds a consortium of {state.hospitals} hospital(s),"
            f" {state.gmp_sites} GMP site(s) and {state.in_house} in-house hospital(s): run"
            f" with --hospitals {state.hospitals} --gmp-sites {state.gmp_sites} --in-house"
            f" {state.in_house}, or `python -m v2v_simulator clean` to start over"
        )
    return state


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(options: DemoOptions, console: Console) -> int:
    """The exit status: 0 when every journey completed and verify is clean. SIGTERM
    interrupts it like Ctrl-C while it runs (the handler before is restored after)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _run_demo(options, console)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_demo(options: DemoOptions, console: Console) -> int:
    started = time.monotonic()
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    state = load_state(options, data_dir)
    up = UpRecord.load(data_dir)
    if up is not None:
        return _demo_on_running(options, state, up, console)
    consortium = state.consortium()
    pki = data_dir / "pki"
    if ensure_pki(pki, consortium):
        console.print(f"created the consortium PKI in {pki}")
    broker = LocalBroker(data_dir)
    external = os.environ.get("V2V_KAFKA_BOOTSTRAP", "").strip()
    started_broker = not external and not broker.running()
    console.print("starting the Kafka broker ..." if started_broker else "using the Kafka broker")
    bootstrap = external or broker.up()
    stores = Stores(data_dir, os.environ.get("V2V_POSTGRES_DSN") or None)
    system = System(consortium, pki, stores, bootstrap, data_dir / "logs")
    system.define_all()
    ensure_signers(system)
    clients: Clients | None = None
    try:
        console.print(f"starting {len(system.services)} services (logs: {system.log_dir}/*.log)")
        system.start()
        tokens = ensure_courier_tokens(system, data_dir)
        clients = Clients(pki, system, consortium, tokens)
        return _simulate(options, state, system, clients, console)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the stop
        if clients is not None:
            clients.close()
        console.print("stopping the services ...")
        failed = {name: code for name, code in system.stop().items() if code not in (0, None)}
        if failed:
            console.print(f"[yellow]services that did not exit cleanly: {failed}[/]")
        if started_broker:
            console.print("stopping the Kafka broker ...")
            broker.down()
        console.print(f"demo took {time.monotonic() - started:.0f}s; logs in {system.log_dir}")
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _demo_on_running(options: DemoOptions, state: DemoState, up: UpRecord, console: Console) -> int:
    """The demo's patients added to the consortium `make up` runs, which stays running."""
    data_dir = options.data_dir.resolve()
    dead = up.dead()
    if dead:
        raise DemoError(
            f"{UpRecord.path(data_dir)} records services that no longer run"
            f" ({', '.join(s.name for s in dead)}): `{how('down', data_dir)}` first, or"
            f" `{how('up', data_dir)}` to start everything again"
        )
    console.print("the consortium is up (`make up`): adding the demo's patients to it")
    system = attach(up, Stores(data_dir, os.environ.get("V2V_POSTGRES_DSN") or None))
    tokens = ensure_courier_tokens(system, data_dir)
    clients = Clients(system.pki, system, system.consortium, tokens)
    try:
        return _simulate(options, state, system, clients, console)
    finally:
        clients.close()
        console.print(f"the consortium stays up: `{how('down', data_dir)}` stops it")


def _simulate(
    options: DemoOptions, state: DemoState, system: System, clients: Clients, console: Console
) -> int:
    consortium, data_dir = system.consortium, system.stores.data_dir
    plans = plan_patients(consortium, options.patients, state.seed, state.patients_so_far + 1)
    state.patients_so_far += options.patients
    state.save(data_dir)
    world = World(consortium, clients)
    console.print(
        f"simulating {len(plans)} patients at {', '.join(consortium.site_ids)}"
        f" ({options.workers} at a time)"
    )
    result = run_journeys(world, plans, options.workers, console)
    console.print(
        f"{len(result.journeys)} journeys, {result.steps} API steps in {result.elapsed_s:.0f}s"
    )
    if result.failure is not None:
        console.print(f"[red]journey failed: {result.failure}[/]")
        for death in system.deaths():
            console.print(f"[red]{death}[/]")
        console.print(f"service logs: {data_dir / 'logs'}")
        return 1
    converged = True
    try:
        settled(clients, result.journeys, PROJECTION_CATCH_UP_S)
    except TimeoutError as error:
        console.print(f"[red]{error}[/]")
        converged = False
    render(read_summary(clients), console)
    verdict = verify(system.pki, system.kafka_bootstrap)
    colour = "green" if verdict.clean else "red"
    console.print(f"[{colour}]v2v audit verify: {verdict.last_line}[/]")
    if not verdict.clean:
        console.print(verdict.output[-4000:] + verdict.errors[-2000:])
    return 0 if verdict.clean and converged else 1
