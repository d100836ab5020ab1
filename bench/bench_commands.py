"""Commands/s per service beside the raw eventsourcing save rate on the same store (issue 18
item 6; target: commands/s per service at 16 clients >= 30 % of the raw save rate).

    uv run --frozen python bench/bench_commands.py [--quick] [--seconds 3]

For each store (SQLite, PostgreSQL) the consortium's services run as the demo runs them
(bench_services.py: separate processes, relays and Kafka consumers on, gRPC over mTLS with the
sites' certificates) and each service gets one representative write command, repeatable
without running out of preconditions (built through the public APIs before timing starts):

  intake         EnrolPatient               a new patient each time (COI issued)
  manufacturing  RecordProcessStep          an expansion step on the client's running batch
  logistics      UploadTemperatureReadings  5 new readings for the client's open shipment
  release        RecordQcResult             the viability result of the client's batch,
                                            corrected (a new result replacing the current)
  infusion       StoreProduct               the client's received product unit moved to
                                            another fridge

at 1, 4 and 16 clients, `--seconds` each. A client is one thread with its own mTLS channel
calling one command after another; the clients are spread over up to 4 client processes
(spawned once), so the client's interpreter is not the bottleneck. Each client has its own
aggregate (batch, shipment, unit), so conflicts come only from the service itself (intake's
number issuing; ABORTED is retried as the demo's clients retry it, inside the call's time).
The 1- and 4-client levels use aggregates of their own, the 16-client level all 16 (5 of them
already longer by the earlier levels): streams grow by rate x seconds during a level, so
what item 2b (aggregate cache) changes shows here too. Figures: commands/s (completed calls
over the wall time from the first call's start to the last call's end), p50/p99 latency of
a call as the client sees it. Kafka and PostgreSQL are resolved as bench/run.py resolves
them (V2V_KAFKA_BOOTSTRAP / V2V_POSTGRES_DSN, a container, or the local scripts).

In the same run, on the same store: the raw eventsourcing save rate, a plain
`eventsourcing.application.Application` saving a new small aggregate (one event) from as many
threads (SQLite: a file beside the services' with their settings; PostgreSQL: intake's own
database). The ratio at 16 clients is printed beside the target.

`--quick` (smoke): intake only, 1 and 4 clients, SQLite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
from bench_services import (
    CONSORTIUM,
    GMP,
    HOSPITAL,
    SERVICES,
    Deployment,
    deployed,
    prepare,
    qc_result,
)
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from v2v.infusion.v1 import infusion_service_pb2 as infusion_pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as infusion_grpc
from v2v.intake.v1 import intake_service_pb2 as intake_pb
from v2v.intake.v1 import intake_service_pb2_grpc as intake_grpc
from v2v.logistics.v1 import logistics_service_pb2 as logistics_pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as logistics_grpc
from v2v.manufacturing.v1 import manufacturing_service_pb2 as manufacturing_pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as manufacturing_grpc
from v2v.release.v1 import release_service_pb2_grpc as release_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import Resolved, find_repo_root, resolve_kafka, resolve_postgres
from v2v_simulator.clients import call

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.30
TARGET_CLIENTS = 16
CLIENTS = (1, 4, 16)
QUICK_CLIENTS = (1, 4)
SECONDS = 3.0
QUICK_SECONDS = 2.0
CLIENT_PROCESSES = 4
START_MARGIN_S = 1.0
"""Between handing the clients their work and the common start (channels connect first)."""
READINGS_PER_UPLOAD = 5
COMMANDS = {
    "intake": "EnrolPatient",
    "manufacturing": "RecordProcessStep",
    "logistics": "UploadTemperatureReadings",
    "release": "RecordQcResult",
    "infusion": "StoreProduct",
}
SERVING_SITE = {
    "intake": HOSPITAL.site_id,
    "manufacturing": GMP.site_id,
    "logistics": CONSORTIUM.logistics_site,
    "release": GMP.site_id,
    "infusion": HOSPITAL.site_id,
}
CALLING_SITE = {
    "intake": HOSPITAL.site_id,
    "manufacturing": GMP.site_id,
    "logistics": HOSPITAL.site_id,  # the shipment's origin uploads its logger's readings
    "release": GMP.site_id,
    "infusion": HOSPITAL.site_id,
}


# ---------------------------------------------------------------- the commands (client side)


def _enrol(channel: Any, slot: dict[str, Any]) -> Callable[[], None]:
    stub = intake_grpc.IntakeServiceStub(channel)

    def command() -> None:
        serial = uuid4().hex
        request = intake_pb.EnrolPatientRequest(
            operator=HOSPITAL.collection_staff[0],
            patient_pseudonym=f"PSN-{serial}",
            personal_details=intake_pb.PersonalDetails(
                given_name="Bench",
                family_name="Patient",
                mrn=f"MRN-{serial[:16]}",
                birth_date="1970-01-15",
            ),
            treating_site_id=HOSPITAL.site_id,
        )
        call(stub.EnrolPatient, request)

    return command


def _process_step(channel: Any, slot: dict[str, Any]) -> Callable[[], None]:
    stub = manufacturing_grpc.ManufacturingServiceStub(channel)
    request = manufacturing_pb.RecordProcessStepRequest(
        operator=GMP.operator,
        batch_id=slot["batch_id"],
        step_kind="expansion",
        device_type="CliniMACS Prodigy",
        device_serial="PRODIGY-0001",
        reagent_lots=["IL-7/15-405"],
    )

    def command() -> None:
        call(stub.RecordProcessStep, request)

    return command


def _readings(channel: Any, slot: dict[str, Any]) -> Callable[[], None]:
    stub = logistics_grpc.LogisticsServiceStub(channel)
    last = [datetime.now(UTC) - timedelta(seconds=1)]
    step = timedelta(milliseconds=1)

    def command() -> None:
        """Readings a millisecond apart, each later than any sent before, up to now."""
        first = max(datetime.now(UTC) - READINGS_PER_UPLOAD * step, last[0] + step)
        moments = [first + n * step for n in range(READINGS_PER_UPLOAD)]
        last[0] = moments[-1]
        request = logistics_pb.UploadTemperatureReadingsRequest(
            operator=HOSPITAL.nurses[0],
            shipment_id=slot["shipment_id"],
            readings=[
                logistics_pb.TemperatureReading(
                    measured_at=timestamp(at), temperature_c=4.5, device_id=slot["logger"]
                )
                for at in moments
            ],
        )
        reply = call(stub.UploadTemperatureReadings, request)
        if reply.recorded != READINGS_PER_UPLOAD:
            raise RuntimeError(f"recorded {reply.recorded} of {READINGS_PER_UPLOAD} readings")

    return command


def _qc_correction(channel: Any, slot: dict[str, Any]) -> Callable[[], None]:
    stub = release_grpc.ReleaseServiceStub(channel)

    def command() -> None:
        reply = call(stub.RecordQcResult, qc_result(slot["batch_id"], slot["result_id"]))
        slot["result_id"] = reply.result_id

    return command


def _store(channel: Any, slot: dict[str, Any]) -> Callable[[], None]:
    stub = infusion_grpc.InfusionServiceStub(channel)
    places = iter(range(1 << 62))

    def command() -> None:
        location = f"pharmacy fridge {1 + next(places) % 2}"
        request = infusion_pb.StoreProductRequest(
            operator=HOSPITAL.nurses[0], din=slot["din"], location=location
        )
        call(stub.StoreProduct, request)

    return command


MAKERS: dict[str, Callable[[Any, dict[str, Any]], Callable[[], None]]] = {
    "intake": _enrol,
    "manufacturing": _process_step,
    "logistics": _readings,
    "release": _qc_correction,
    "infusion": _store,
}


def client_process(
    service: str,
    target: str,
    pki: str,
    slots: list[dict[str, Any]],
    start_at: float,
    seconds: float,
) -> dict[str, Any]:
    """One client process: a thread per slot, each with its own channel, calling from
    `start_at` (wall clock) for `seconds`. Latencies (ms), first start and last end (wall
    clock) and the slots as they are after (release's current result)."""
    credentials = channel_credentials(SiteTlsFiles.for_site(Path(pki), CALLING_SITE[service]))
    latencies: list[list[float]] = [[] for _ in slots]
    bounds: list[tuple[float, float]] = [(0.0, 0.0)] * len(slots)
    errors: list[BaseException] = []

    def client(n: int) -> None:
        channel = secure_channel(target, credentials)
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
            command = MAKERS[service](channel, slots[n])
            time.sleep(max(0.0, start_at - time.time()))
            began = time.time()
            end = began + seconds
            mine = latencies[n]
            while time.time() < end:
                t0 = time.perf_counter()
                command()
                mine.append((time.perf_counter() - t0) * 1000)
            bounds[n] = (began, time.time())
        except BaseException as error:  # noqa: BLE001 - handed to the parent process below
            errors.append(error)
        finally:
            channel.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(slots))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{service} client failed: {errors[0]!r}")
    return {
        "latencies": [value for values in latencies for value in values],
        "began": min(b for b, _ in bounds),
        "ended": max(e for _, e in bounds),
        "slots": slots,
    }


def _warm(_: int) -> int:
    time.sleep(0.5)
    return os.getpid()


def run_clients(
    pool: ProcessPoolExecutor,
    service: str,
    target: str,
    pki: Path,
    slots: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """`len(slots)` clients over up to CLIENT_PROCESSES processes; the slots are updated."""
    processes = min(len(slots), CLIENT_PROCESSES)
    shares = [list(range(n, len(slots), processes)) for n in range(processes)]
    start_at = time.time() + START_MARGIN_S
    futures = [
        pool.submit(
            client_process, service, target, str(pki), [slots[i] for i in share], start_at, seconds
        )
        for share in shares
    ]
    outcomes = [future.result() for future in futures]
    for share, outcome in zip(shares, outcomes, strict=True):
        for i, slot in zip(share, outcome["slots"], strict=True):
            slots[i].update(slot)
    latencies = [value for outcome in outcomes for value in outcome["latencies"]]
    wall = max(o["ended"] for o in outcomes) - min(o["began"] for o in outcomes)
    return figures(latencies, wall)


def figures(latencies: list[float], wall_s: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "per_s": round(len(ordered) / wall_s, 1),
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
    }


# ---------------------------------------------------------------- the raw save


class Note(Aggregate):
    """A small aggregate: created with one short text."""

    def __init__(self, text: str) -> None:
        self.text = text


class RawSave(Application[Any]):
    name = "BenchRawSave"


def raw_save(env: dict[str, str], threads: int, seconds: float) -> dict[str, Any]:
    """A plain eventsourcing application saving new Notes from `threads` threads."""
    app = RawSave(env=env)
    try:
        app.save(Note("warm-up"))
        latencies: list[list[float]] = [[] for _ in range(threads)]
        start = threading.Barrier(threads + 1)

        def saver(n: int) -> None:
            mine = latencies[n]
            start.wait()
            end = time.perf_counter() + seconds
            while (t0 := time.perf_counter()) < end:
                app.save(Note(f"note {n}"))
                mine.append((time.perf_counter() - t0) * 1000)

        workers = [threading.Thread(target=saver, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        start.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
        return figures([v for values in latencies for v in values], time.perf_counter() - began)
    finally:
        app.close()


# ---------------------------------------------------------------- one store, everything


def progress(text: str) -> None:
    print(f"[bench_commands {datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def measure_store(
    deployment: Deployment,
    pool: ProcessPoolExecutor,
    services: tuple[str, ...],
    levels: tuple[int, ...],
    seconds: float,
) -> dict[str, Any]:
    system = deployment.system
    raw = {str(n): raw_save(deployment.raw_save_env, n, seconds) for n in levels}
    progress(f"{deployment.store} raw save: {', '.join(_shown(r) for r in raw.values())}")
    result: dict[str, Any] = {
        "startup_s": round(deployment.started_s, 1),
        "setup_s": round(deployment.setup_s, 1),
        "raw_save": raw,
        "services": {},
    }
    for service in services:
        target = system.grpc_target(service, SERVING_SITE[service])
        slots = deployment.slots.get(service) or [{} for _ in range(max(levels))]
        by_level = {}
        for n, chosen in zip(levels, _spread(len(slots), levels), strict=True):
            picked = [slots[i] for i in chosen]
            by_level[str(n)] = got = run_clients(pool, service, target, system.pki, picked, seconds)
            progress(
                f"{deployment.store} {service} {COMMANDS[service]}, {n} clients: {_shown(got)}"
            )
        top = str(max(levels))
        ratio = by_level[top]["per_s"] / raw[top]["per_s"]
        result["services"][service] = {
            "command": COMMANDS[service],
            "clients": by_level,
            f"vs_raw_save_at_{top}": round(ratio, 3),
        }
    return result


def _spread(count: int, levels: tuple[int, ...]) -> list[list[int]]:
    """Which aggregates each level's clients use: fresh ones from the end while they last
    (streams stay short), all from the start for the level that needs more."""
    chosen, end = [], count
    for n in levels:
        if n <= end:
            chosen.append(list(range(end - n, end)))
            end -= n
        else:
            chosen.append(list(range(n)))
    return chosen


def measure_stores(
    pool: ProcessPoolExecutor,
    kafka: str,
    postgres: Resolved | None,
    services: tuple[str, ...],
    levels: tuple[int, ...],
    seconds: float,
) -> dict[str, Any]:
    """SQLite, then PostgreSQL when given: services started, preconditions, figures."""
    stores: dict[str, Any] = {}
    choices = [("SQLite", None)] + ([] if postgres is None else [("PostgreSQL", postgres.address)])
    for store, server_dsn in choices:
        with (
            tempfile.TemporaryDirectory(prefix="v2v-bench-commands-") as scratch,
            deployed(store, Path(scratch), kafka, server_dsn, services) as deployment,
        ):
            progress(f"{store}: services up in {deployment.started_s:.1f} s")
            if set(services) - {"intake"}:  # EnrolPatient needs nothing before
                prepare(deployment, max(levels))
                progress(f"{store}: preconditions built in {deployment.setup_s:.1f} s")
            stores[store] = measure_store(deployment, pool, services, levels, seconds)
    return stores


def measure(quick: bool = False, seconds: float | None = None) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    began = time.monotonic()
    levels = QUICK_CLIENTS if quick else CLIENTS
    services = ("intake",) if quick else SERVICES
    per_level = seconds or (QUICK_SECONDS if quick else SECONDS)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=context)
    warming = [pool.submit(_warm, n) for n in range(CLIENT_PROCESSES)]  # while Kafka starts
    root = find_repo_root(ROOT)
    with pool:
        kafka = resolve_kafka(root)
        try:
            postgres = None if quick else resolve_postgres(root)
        except BaseException:
            kafka.close()
            raise
        infra_s = time.monotonic() - began
        for future in warming:
            future.result()
        try:
            stores = measure_stores(pool, kafka.address, postgres, services, levels, per_level)
        finally:
            kafka.close()
            if postgres is not None:
                postgres.close()
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "seconds_per_level": per_level,
        "clients": list(levels),
        "client_model": f"one thread and mTLS channel per client, over up to"
        f" {CLIENT_PROCESSES} client processes",
        "commands": {service: COMMANDS[service] for service in services},
        "target_vs_raw_save": TARGET_RATIO,
        "stores": stores,
        "elapsed_s": round(time.monotonic() - began, 1),
        "kafka_postgres_resolved_s": round(infra_s, 1),
        "load_average_at_start": load_before,
        "load_average_at_end": list(os.getloadavg()),
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    lines: list[tuple[str, str, str, bool | None]] = []
    top = str(max(result["clients"]))
    target = f">= {result['target_vs_raw_save']:.0%}"
    for store, figures_of in result["stores"].items():
        for n, raw in figures_of["raw_save"].items():
            lines.append((f"{store} raw eventsourcing save, {n} thr", _shown(raw), "", None))
        for service, measured in figures_of["services"].items():
            for n, got in measured["clients"].items():
                name = f"{store} {service} {measured['command']}, {n} cl"
                lines.append((name, _shown(got), "", None))
            ratio = measured[f"vs_raw_save_at_{top}"]
            name = f"{store} {service} / raw save at {top}"
            if top == str(TARGET_CLIENTS):
                ok = ratio >= result["target_vs_raw_save"]
                lines.append((name, f"{ratio:.0%}", target, ok))
            else:  # the target is at 16 clients (a quick run stops at 4)
                lines.append((name, f"{ratio:.0%}", "", None))
    return lines


def _shown(got: dict[str, Any]) -> str:
    return f"{got['per_s']:,.0f}/s p50 {got['p50_ms']:.1f} p99 {got['p99_ms']:.1f} ms"


def table(result: dict[str, Any]) -> str:
    lines = [f"{'measure':58} {'value':>34}  {'target':>7}  ok"]
    for name, value, target, ok in rows(result):
        mark = "" if ok is None else ("yes" if ok else "NO")
        lines.append(f"{name:58} {value:>34}  {target:>7}  {mark}")
    lines.append(f"Kafka (and PostgreSQL) resolved in {result['kafka_postgres_resolved_s']} s")
    for store, figures_of in result["stores"].items():
        lines.append(
            f"{store}: services started in {figures_of['startup_s']} s, preconditions built"
            f" in {figures_of['setup_s']} s"
        )
    lines.append(
        f"{result['seconds_per_level']:g} s per level; clients: {result['client_model']};"
        f" whole run {result['elapsed_s']} s; load average {_load(result['load_average_at_start'])}"
        f" at start, {_load(result['load_average_at_end'])} at end"
    )
    return "\n".join(lines)


def _load(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="intake, 1 and 4 clients, SQLite")
    parser.add_argument("--seconds", type=float, default=None, help="per level and service")
    arguments = parser.parse_args()
    print(table(measure(arguments.quick, arguments.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
