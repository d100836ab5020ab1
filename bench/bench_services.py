"""The services the command benchmark (bench_commands.py) drives, as the demo runs them: a
consortium of one hospital, one GMP site and the couriers' logistics site, each service its
own process (`v2v_simulator.system.System`: relays on, Kafka consumers on, mTLS gRPC), event
stores in SQLite files or one PostgreSQL database per service; and the preconditions of the
timed commands, built through the same public APIs by the simulator's journey steps before
any timing starts.

Site names are the benchmark's own (HOSP-N, GMP-Z, LOGI-Z), so its consumer groups never mix
with those of a test's or the demo's services on a shared broker. The projection is not
started: no timed command needs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]

from v2v.common.v1.common_pb2 import CONDITION_FRESH_COLD
from v2v.infusion.v1 import infusion_service_pb2 as infusion_pb
from v2v.logistics.v1 import logistics_service_pb2 as logistics_pb
from v2v.manufacturing.v1 import manufacturing_service_pb2 as manufacturing_pb
from v2v.release.v1 import release_service_pb2 as release_pb
from v2v_platform.config import EventStoreSettings
from v2v_platform.proto_values import timestamp
from v2v_platform.testing import infra
from v2v_simulator.clients import Clients, call
from v2v_simulator.consortium import Consortium, GmpSite, Hospital
from v2v_simulator.journey.calendar import plan_calendar
from v2v_simulator.journey.collection import collect, enrol
from v2v_simulator.journey.context import Journey, World
from v2v_simulator.journey.manufacturing import manufacture
from v2v_simulator.runner import open_slots
from v2v_simulator.scenarios import PatientPlan
from v2v_simulator.setup import ensure_pki, ensure_signers
from v2v_simulator.stores import Stores
from v2v_simulator.system import System, service_names

GMP = GmpSite("GMP-Z", "Z1234")
HOSPITAL = Hospital("HOSP-N", "N1234", GMP)
CONSORTIUM = Consortium((HOSPITAL,), (GMP,), logistics_site="LOGI-Z", auditor_site="AUDIT-Z")
SERVICES = ("intake", "manufacturing", "logistics", "release", "infusion")
SETUP_WORKERS = 6
FACT_TIMEOUT_S = 120.0
UNKNOWN_UNIT = "(unknown-unit)"
QC_TEST = ("viability", "flow cytometry", "92.5", "%")
"""The release result the benchmark records (and then corrects, again and again)."""


@dataclass
class Deployment:
    store: str  # "SQLite" or "PostgreSQL"
    system: System
    clients: Clients
    world: World
    raw_save_env: dict[str, str]
    """The eventsourcing settings of a plain application on the same store as the services
    (SQLite: a file beside theirs; PostgreSQL: intake's own database)."""
    started_s: float
    slots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    setup_s: float = 0.0


@contextmanager
def deployed(
    store: str, data_dir: Path, kafka: str, server_dsn: str | None, contexts: tuple[str, ...]
) -> Iterator[Deployment]:
    """The consortium's services of `contexts` (plus manufacturing when intake runs: intake
    books slots there) started on `store`; stopped, and their databases dropped, after."""
    began = time.monotonic()
    pki = data_dir / "pki"
    ensure_pki(pki, CONSORTIUM)
    bench_db = infra.create_database(server_dsn, prefix="v2v_bench") if server_dsn else None
    stores = Stores(data_dir, bench_db.dsn if bench_db else None)
    system = System(CONSORTIUM, pki, stores, kafka, data_dir / "logs")
    clients = Clients(pki, system, CONSORTIUM, {})
    try:
        system.define_all()
        ensure_signers(system)
        wanted = set(contexts) | ({"manufacturing"} if "intake" in contexts else set())
        for name in [n for n in system.services if n.split("-", 1)[0] not in wanted]:
            del system.services[name]
        system.start()
        if bench_db is not None:
            intake_dsn = stores.ensure_database(System.name("intake", HOSPITAL.site_id))
            raw_env = EventStoreSettings(postgres_dsn=intake_dsn).eventsourcing_env()
        else:
            raw_env = EventStoreSettings(
                sqlite_path=data_dir / "stores" / "raw-save.sqlite"
            ).eventsourcing_env()
        world = World(CONSORTIUM, clients, fact_timeout_s=FACT_TIMEOUT_S)
        yield Deployment(store, system, clients, world, raw_env, time.monotonic() - began)
    finally:
        clients.close()
        statuses = system.stop()
        if bench_db is not None and server_dsn is not None:
            stores.drop_databases(service_names(CONSORTIUM))
            infra.drop_database(server_dsn, bench_db.dbname)
    unclean = {name: status for name, status in statuses.items() if status not in (0, None)}
    if unclean:
        raise RuntimeError(f"services that did not stop cleanly: {unclean} (logs: {data_dir})")


# ---------------------------------------------------------------- preconditions


def prepare(deployment: Deployment, count: int) -> None:
    """`count` aggregates per timed command, one per client (through the public APIs):
    running batches (manufacturing's process steps; release's QC result, first recorded
    here, then corrected), an open shipment of each of their patients' bags (temperature
    uploads), and harvested product units received at the ward (storage moves)."""
    began = time.monotonic()
    world = deployment.world
    now = datetime.now(UTC)
    plans = [
        PatientPlan(n, HOSPITAL, cryo=False, apheresis_bags=1) for n in range(1, 2 * count + 1)
    ]
    journeys = [Journey(plan, world, plan_calendar(plan, now)) for plan in plans]
    open_slots(world, journeys)
    running, harvested = journeys[:count], journeys[count:]
    with ThreadPoolExecutor(SETUP_WORKERS, thread_name_prefix="bench-setup") as pool:
        batches = list(pool.map(_running_batch, running))
        products = list(pool.map(_received_product, harvested))
    deployment.slots = {
        "intake": [{} for _ in range(count)],
        "manufacturing": [{"batch_id": b["batch_id"]} for b in batches],
        "release": [{"batch_id": b["batch_id"], "result_id": b["result_id"]} for b in batches],
        "logistics": [{"shipment_id": b["shipment_id"], "logger": b["logger"]} for b in batches],
        "infusion": [{"din": din} for din in products],
    }
    deployment.setup_s = time.monotonic() - began


def _running_batch(journey: Journey) -> dict[str, str]:
    """Enrolled, collected, its bag on an open shipment to the GMP site and received there
    into a started batch, whose first QC result release has recorded."""
    enrol(journey)
    collect(journey, 1)
    logger = f"LOGGER-BENCH-{journey.plan.number}"
    shipment_id = _open_shipment(journey, logger)
    _start_batch(journey)
    result_id = _first_result(journey)
    return {
        "batch_id": journey.batch_id,
        "result_id": result_id,
        "shipment_id": shipment_id,
        "logger": logger,
    }


def _received_product(journey: Journey) -> str:
    """Enrolled, collected, manufactured and harvested; its product received at the ward."""
    enrol(journey)
    collect(journey, 1)
    manufacture(journey, 1, fails=False)
    din = journey.product_dins[0]
    ward = journey.world.clients.infusion(HOSPITAL.site_id)
    receipt = infusion_pb.ReceiveProductRequest(operator=HOSPITAL.nurses[0], din=din)

    def received() -> bool:
        """Received; False while the ward has not learnt the unit from manufacturing (the
        refusal says so and is recorded, as every refused receipt scan is)."""
        try:
            call(ward.ReceiveProduct, receipt)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION and UNKNOWN_UNIT in (
                error.details() or ""
            ):
                return False
            raise
        return True

    with journey.step("receive product at the ward"):
        journey.poll(received, "the ward to know the product unit")
    return din


def _open_shipment(journey: Journey, logger: str) -> str:
    origin = journey.world.clients.logistics(HOSPITAL.site_id)
    create = logistics_pb.CreateShipmentRequest(
        operator=HOSPITAL.nurses[0],
        manifest_dins=journey.apheresis_dins,
        condition=CONDITION_FRESH_COLD,
        destination_site_id=GMP.site_id,
        shipper_id=f"BOX-BENCH-{journey.plan.number}",
        data_logger_id=logger,
    )
    with journey.step("create shipment"):
        shipment = journey.once_known(
            lambda: call(origin.CreateShipment, create).shipment, "logistics to know the bag"
        )
    return str(shipment.shipment_id)


def _start_batch(journey: Journey) -> None:
    station = journey.world.clients.manufacturing(GMP.site_id)
    times = journey.calendar.cycles[0]
    dins = set(journey.apheresis_dins)

    def expected() -> bool:
        reply = call(
            station.ListExpectedUnits,
            manufacturing_pb.ListExpectedUnitsRequest(coi=journey.coi),
        )
        return dins <= {unit.din for unit in reply.units if unit.slot_id}

    with journey.step("bags expected at GMP"):
        journey.poll(expected, "intake's packaged bags to reach manufacturing")
    for din in journey.apheresis_dins:
        with journey.step("receive bag at GMP"):
            receipt = manufacturing_pb.ReceiveUnitRequest(
                operator=GMP.operator,
                scanned_din=din,
                scanned_coi=journey.coi,
                received_at=timestamp(times.received_at_gmp),
            )
            call(station.ReceiveUnit, receipt)
    with journey.step("start batch"):
        start = manufacturing_pb.StartBatchRequest(
            operator=GMP.operator,
            input_dins=journey.apheresis_dins,
            started_at=timestamp(times.batch_started),
        )
        journey.batch_id = call(station.StartBatch, start).batch_id


def _first_result(journey: Journey) -> str:
    release = journey.world.clients.release(GMP.site_id)
    request = qc_result(journey.batch_id, "")
    with journey.step("first QC result"):
        reply = journey.once_known(
            lambda: call(release.RecordQcResult, request), "release to know the batch"
        )
    return str(reply.result_id)


def qc_result(batch_id: str, corrects: str) -> release_pb.RecordQcResultRequest:
    """The release result of the benchmark; a correction of result `corrects` when given."""
    test, method, value, unit = QC_TEST
    return release_pb.RecordQcResultRequest(
        operator=GMP.analyst,
        batch_id=batch_id,
        test=test,
        method=method,
        value=value,
        unit=unit,
        result_at=timestamp(datetime.now(UTC)),
        analyst=GMP.analyst,
        corrects_result_id=corrects,
        correction_reason="re-read by the benchmark" if corrects else "",
    )
