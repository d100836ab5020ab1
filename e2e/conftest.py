"""Fixtures of the black-box end-to-end tests: the whole system as separate processes (one per
service and site) on real PostgreSQL (one database per service) and a Kafka broker of their
own, started with infra/kafka/kafka.sh in a private state directory so the tests may stop and
restart it on the same port and data without disturbing any shared broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from v2v_platform.testing.infra import PostgresDatabase
from v2v_simulator.broker import LocalBroker
from v2v_simulator.clients import Clients
from v2v_simulator.consortium import Consortium
from v2v_simulator.journey.context import World
from v2v_simulator.runner import run_journeys
from v2v_simulator.running import DemoRun, RunningConsortium
from v2v_simulator.scenarios import plan_patients
from v2v_simulator.setup import ensure_courier_tokens, ensure_pki, ensure_signers
from v2v_simulator.stores import Stores
from v2v_simulator.summary import settled
from v2v_simulator.system import System, service_names

FACT_TIMEOUT_S = 90.0  # long enough to wait out a broker restart
DEMO_PATIENTS = 4
DEMO_SEED = 7  # `v2v_simulator demo`'s default seed: its plans hold every special case
SETTLE_S = 180.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, str]]:
    broker = LocalBroker(tmp_path / "broker-state")
    bootstrap = broker.up()
    try:
        yield broker, bootstrap
    finally:
        broker.down()


@contextmanager
def running(
    consortium: Consortium, tmp_path: Path, broker: LocalBroker, bootstrap: str, dsn: str
) -> Iterator[RunningConsortium]:
    """`consortium`'s services started on PostgreSQL (`dsn`) and the broker; stopped (each
    must exit cleanly on SIGTERM) and their databases dropped afterwards."""
    pki = tmp_path / "pki"
    ensure_pki(pki, consortium)
    stores = Stores(tmp_path, dsn)
    system = System(consortium, pki, stores, bootstrap, tmp_path / "logs")
    system.define_all()
    ensure_signers(system)
    clients: Clients | None = None
    try:
        system.start()
        tokens = ensure_courier_tokens(system, tmp_path)
        clients = Clients(pki, system, consortium, tokens)
        world = World(consortium, clients, fact_timeout_s=FACT_TIMEOUT_S)
        yield RunningConsortium(system, broker, bootstrap, clients, world)
    finally:
        if clients is not None:
            clients.close()
        statuses = system.stop()
        stores.drop_databases(service_names(consortium))
    unclean = {name: status for name, status in statuses.items() if status != 0}
    assert not unclean, f"services that did not stop cleanly on SIGTERM: {unclean}"


@pytest.fixture
def consortium_system(
    tmp_path: Path,
    own_broker: tuple[LocalBroker, str],
    postgres_database: PostgresDatabase,
) -> Iterator[RunningConsortium]:
    """Two hospitals and one GMP site."""
    consortium = Consortium.sized(hospitals=2, gmp_sites=1)
    with running(consortium, tmp_path, *own_broker, postgres_database.dsn) as system:
        yield system


@pytest.fixture
def in_house_consortium(
    tmp_path: Path,
    own_broker: tuple[LocalBroker, str],
    postgres_database: PostgresDatabase,
) -> Iterator[RunningConsortium]:
    """One hospital, one GMP site and an in-house hospital (every role at one site, one FIN)."""
    consortium = Consortium.sized(hospitals=1, gmp_sites=1, in_house=1)
    with running(consortium, tmp_path, *own_broker, postgres_database.dsn) as system:
        yield system


@pytest.fixture
def demo_run(consortium_system: RunningConsortium) -> DemoRun:
    """`consortium_system` after the demo's first patients' journeys, every chain complete in
    the projection."""
    consortium = consortium_system.system.consortium
    plans = plan_patients(consortium, DEMO_PATIENTS, seed=DEMO_SEED)
    result = run_journeys(consortium_system.world, plans, DEMO_PATIENTS, show_progress=False)
    assert result.failure is None, f"a journey failed: {result.failure}"
    settled(consortium_system.clients, result.journeys, SETTLE_S)
    return DemoRun(consortium_system, list(result.journeys))
