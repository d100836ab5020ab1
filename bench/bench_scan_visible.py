"""Courier scan -> visible in GetChain on the projection, against the real running consortium
(issue 18 item 6; target: p99 <= 40 ms at 100 ops/s, store->publish median <= 5 ms).

    uv run --frozen python bench/bench_scan_visible.py [--quick] [--seconds S] [--rates 20,50,100]

The consortium is started as the demo starts it (one hospital, one GMP site, the logistics
service, the projection; every service its own process, SQLite event stores, a Kafka broker of
its own under a scratch directory: infra/kafka/kafka.sh, as `make demo` and the e2e tests).
Before anything is timed, patients are enrolled and collected with 4 bags each (intake
gRPC), and each apheresis shipment is created and offered to its courier: every bag is one
courier scan still to make. Then courier scans go over HTTP (the logistics courier API, a
real bearer token) OPEN-LOOP at 20, 50 and 100 scans/s: each scan is sent at its scheduled
time (from a pool of senders), whether or not the previous ones were answered; consecutive
scans go to different shipments (round robin), as many couriers scanning at once.

Measured per scan, all on the wall clock of this machine (time.time(); the services run here):
  scan -> visible   sent -> the first GetChain (gRPC, mTLS, as the auditor) of its chain
                    showing it: the chain's `updated_at` (the latest recorded time of its
                    events) reached the recorded time of the scan's event (a scan is the only
                    event recorded on its chain while the scans run; a scan has no other mark
                    in GetChain). A poller thread asks for every chain with a scan sent (2 ms
                    ago or more) and not yet shown, each at most every 4 ms (a few GetChain
                    per scan: polls/scan is given); the time taken is the answer's
                    arrival (an upper bound); the resolution (the interval in which it became
                    visible: from the start of the previous GetChain of that chain that did not
                    show it, or the send, to that answer) is given beside the figures.
  components        scan API: the HTTP response time of the scan;
                    store -> publish: the Kafka record's timestamp (CreateTime, set by the
                    relay's producer when it sends the record) minus the envelope's
                    recorded_at (the event's recorded time), read by a consumer of our own on
                    v2v.logistics.events.v1 (to the send, not to the broker's acknowledgement
                    as bench_relay_latency.py measures; Kafka timestamps are in ms);
                    publish -> visible: visible minus the Kafka record's timestamp.
The bench process itself (16 sender threads, the poller, the consumer) shares the machine: on
a busy one, "sent late vs schedule" says how far the open loop kept its schedule.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from kafka import KafkaConsumer, TopicPartition

from v2v.common.v1.common_pb2 import CONDITION_CRYO
from v2v.events.v1.envelope_pb2 import Envelope
from v2v.logistics.v1 import logistics_service_pb2 as logistics_pb
from v2v.projection.v1 import projection_service_pb2 as projection_pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.broker import LocalBroker
from v2v_simulator.clients import Clients, Courier, call
from v2v_simulator.consortium import Consortium
from v2v_simulator.journey.calendar import plan_calendar
from v2v_simulator.journey.collection import collect, enrol
from v2v_simulator.journey.context import Journey, World
from v2v_simulator.journey.flow import apheresis_leg
from v2v_simulator.journey.shipping import MINUTE, logger_id, relay_couriers
from v2v_simulator.runner import open_slots
from v2v_simulator.scenarios import plan_patients
from v2v_simulator.setup import ensure_courier_tokens, ensure_pki, ensure_signers
from v2v_simulator.stores import Stores
from v2v_simulator.system import System

RATES = (20, 50, 100)
SECONDS = {20: 5.0, 50: 4.0, 100: 3.0}  # >= 100 scans at each rate (p99 is a real figure)
QUICK_SECONDS = 1.0
BAGS = 4  # scans to make per prepared shipment (the most the calendar's labelling-to-
# verification window of 10 minutes takes: each bag's two label checks a minute apart)
SENDERS = 16
TARGET_P99_MS = 40.0  # at 100 ops/s
TARGET_STORE_PUBLISH_P50_MS = 5.0
LOGISTICS_TOPIC = "v2v.logistics.events.v1"
VISIBLE_TIMEOUT_S = 30.0
POLL_FROM_S = 0.002  # a chain is asked for from 2 ms after a scan was sent (none is faster)
POLL_EVERY_S = 0.004  # and then at most every 4 ms (the resolution's floor)
SEED = 7


@dataclass(frozen=True)
class Prepared:
    """A shipment offered to its courier, every bag still to scan."""

    coi: str
    shipment_id: str
    courier_id: str
    giver: str
    dins: list[str]
    picked_up: datetime


@dataclass
class Scan:
    coi: str
    shipment_id: str
    courier_id: str
    body: dict[str, Any]
    nth: int  # the nth scan of its chain (1-based)
    due: float = 0.0
    sent: float = 0.0
    answered: float = 0.0
    visible: float = 0.0
    resolution: float = 0.0
    error: str = ""


@dataclass
class Published:
    recorded_us: int  # the envelope's recorded_at, microseconds since the epoch
    created: float  # the Kafka record's timestamp (s)

    @property
    def recorded(self) -> float:
        return self.recorded_us / 1e6


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def micros(stamp: Any) -> int:
    """A protobuf Timestamp in whole microseconds (the projection shows no finer)."""
    return int(stamp.seconds) * 1_000_000 + int(stamp.nanos) // 1_000


# ------------------------------------------------------------------ the consortium


@dataclass
class Running:
    system: System
    clients: Clients
    world: World
    bootstrap: str


@contextmanager
def consortium(scratch: Path) -> Iterator[Running]:
    """One hospital, one GMP site, logistics and the projection, as the demo starts them (its
    own broker, SQLite stores); stopped and the broker removed afterwards."""
    broker = LocalBroker(scratch / "broker-state")
    bootstrap = broker.up()
    clients: Clients | None = None
    system: System | None = None
    try:
        shape = Consortium.sized(hospitals=1, gmp_sites=1)
        pki = scratch / "pki"
        ensure_pki(pki, shape)
        system = System(shape, pki, Stores(scratch), bootstrap, scratch / "logs")
        system.define_all()
        ensure_signers(system)
        system.start()
        tokens = ensure_courier_tokens(system, scratch)
        clients = Clients(pki, system, shape, tokens)
        world = World(shape, clients, fact_timeout_s=90.0)
        yield Running(system, clients, world, bootstrap)
    finally:
        if clients is not None:
            clients.close()
        if system is not None:
            system.stop()
        broker.down()


def prepare(running: Running, patients: int) -> list[Prepared]:
    """`patients` patients enrolled and collected (`BAGS` bags each), each apheresis shipment
    created and offered to its courier."""
    shape = running.system.consortium
    plans = [
        replace(
            plan,
            apheresis_bags=BAGS,
            second_apheresis=False,
            oos=False,
            sterility_failure=False,
            excursion=False,
            wrong_bag=False,
            long_relay=False,
        )
        for plan in plan_patients(shape, patients, seed=SEED)
    ]
    now = datetime.now(UTC)
    journeys = [Journey(plan, running.world, plan_calendar(plan, now)) for plan in plans]
    open_slots(running.world, journeys)
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="prepare") as pool:
        return list(pool.map(_prepare_one, journeys))


def _prepare_one(journey: Journey) -> Prepared:
    enrol(journey)
    collect(journey, 1)
    leg = apheresis_leg(journey, excursion=False)
    times = journey.calendar.cycles[0].shipment
    courier_id = relay_couriers(journey, leg, 1)[0]
    create = logistics_pb.CreateShipmentRequest(
        operator=leg.origin_operator,
        manifest_dins=leg.dins,
        condition=leg.condition,
        destination_site_id=leg.destination,
        shipper_id=f"{'DEWAR' if leg.condition == CONDITION_CRYO else 'BOX'}-{journey.plan.number}",
        data_logger_id=logger_id(journey, leg),
        courier_id=courier_id,
        created_at=timestamp(times.created),
        department=leg.origin_department,
        destination_department=leg.destination_department,
    )
    origin = journey.world.clients.logistics(leg.origin)
    with journey.step("create apheresis shipment"):
        shipment = journey.once_known(
            lambda: call(origin.CreateShipment, create).shipment, "logistics to know the units"
        )
    return Prepared(
        journey.coi, shipment.shipment_id, courier_id, leg.giver, leg.dins, times.picked_up
    )


def scans_of(prepared: list[Prepared]) -> list[Scan]:
    """Every bag's scan, round robin over the shipments (bag 1 of each, then bag 2, ...)."""
    scans = []
    for n in range(BAGS):
        for shipment in prepared:
            scanned_at = shipment.picked_up - (BAGS - n) * MINUTE
            body = {
                "idempotency_key": str(uuid4()),
                "scanned_at": scanned_at.isoformat(),
                "from_party": shipment.giver,
                "label": shipment.dins[n],
            }
            scans.append(
                Scan(shipment.coi, shipment.shipment_id, shipment.courier_id, body, nth=n + 1)
            )
    return scans


# ------------------------------------------------------------------ watching


class RecordWatch:
    """A consumer of our own on the logistics topic: each UnitScanned record's recorded time
    and Kafka timestamp, by chain in version order."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [
            TopicPartition(LOGISTICS_TOPIC, p)
            for p in self._consumer.partitions_for_topic(LOGISTICS_TOPIC) or ()
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end()
        for partition in partitions:  # resolve the end offsets now, before any scan
            self._consumer.position(partition)
        self._lock = threading.Lock()
        self._by_chain: dict[str, list[tuple[int, Published]]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="record-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for batch in self._consumer.poll(timeout_ms=100).values():
                for record in batch:
                    envelope = Envelope.FromString(record.value)
                    if not envelope.event_type.endswith(".UnitScanned"):
                        continue
                    published = Published(micros(envelope.recorded_at), record.timestamp / 1e3)
                    with self._lock:
                        self._by_chain[envelope.coi].append((envelope.aggregate_version, published))

    def published(self, coi: str, nth: int) -> Published | None:
        with self._lock:
            records = sorted(self._by_chain.get(coi, []), key=lambda item: item[0])
        return records[nth - 1][1] if len(records) >= nth else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


class ChainPoller:
    """Asks GetChain, every `POLL_EVERY_S` at most, for each chain with a scan sent (at least
    `POLL_FROM_S` ago) but not yet shown, and notes the chain's `updated_at` (the latest
    recorded time of its events) at each answer. A scan is shown by the first answer whose
    `updated_at` reached its event's recorded time (from `RecordWatch`; decided afterwards
    when that record comes later): a scan is the only event recorded on its chain while the
    scans run, and has no other mark in GetChain."""

    def __init__(self, clients: Clients, watch: RecordWatch) -> None:
        self._stub = clients.projection()
        self._watch = watch
        self._lock = threading.Lock()
        self._pending: dict[str, list[Scan]] = defaultdict(list)
        self._answers: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
        self._stop = threading.Event()
        self.polls = 0
        self._thread = threading.Thread(target=self._run, name="chain-poller", daemon=True)
        self._thread.start()

    def expect(self, scan: Scan) -> None:
        with self._lock:
            self._pending[scan.coi].append(scan)

    def outstanding(self) -> int:
        with self._lock:
            return sum(len(scans) for scans in self._pending.values())

    def chain(self, coi: str) -> Any:
        return call(self._stub.GetChain, projection_pb.GetChainRequest(coi=coi)).chain

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            with self._lock:
                due = [
                    coi
                    for coi, scans in self._pending.items()
                    if any(s.sent and now - s.sent >= POLL_FROM_S for s in scans)
                    and now - (self._answers[coi][-1][0] if self._answers[coi] else 0.0)
                    >= POLL_EVERY_S
                ]
            for coi in due:
                asked = time.time()
                updated_us = micros(self.chain(coi).updated_at)
                self._answers[coi].append((asked, time.time(), updated_us))
                self.polls += 1
            with self._lock:
                for coi, scans in self._pending.items():
                    for scan in [s for s in scans if s.sent]:
                        if (scan.answered and scan.error) or self._shown(scan):
                            scans.remove(scan)
                    if not scans:
                        self._answers.pop(coi, None)
            if not due:
                time.sleep(0.0005)

    def _shown(self, scan: Scan) -> bool:
        published = self._watch.published(scan.coi, scan.nth)
        if published is None:
            return False
        previous = scan.sent
        for asked, answered, updated_us in self._answers.get(scan.coi, []):
            if asked < scan.sent:
                continue
            if updated_us >= published.recorded_us:
                scan.visible, scan.resolution = answered, answered - previous
                return True
            previous = asked
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ------------------------------------------------------------------ sending


class Senders:
    """A pool sending scans; each thread with its own HTTP client per courier."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients
        self._local = threading.local()
        self._couriers: list[Courier] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="scan")

    def _courier(self, courier_id: str) -> Courier:
        couriers: dict[str, Courier] = getattr(self._local, "couriers", None) or {}
        self._local.couriers = couriers
        if courier_id not in couriers:
            couriers[courier_id] = self._clients.courier(courier_id)
            with self._lock:
                self._couriers.append(couriers[courier_id])
        return couriers[courier_id]

    def warm(self, courier_ids: set[str]) -> None:
        """Open every thread's connections before the timing (GET /me per courier)."""

        def touch(_: int) -> None:
            for courier_id in courier_ids:
                self._courier(courier_id)._http.get("/me")
            time.sleep(0.05)  # hold the thread so the next task goes to another one

        list(self._pool.map(touch, range(SENDERS)))

    def submit(self, scan: Scan) -> None:
        self._pool.submit(self._send, scan)

    def _send(self, scan: Scan) -> None:
        courier = self._courier(scan.courier_id)
        scan.sent = time.time()
        try:
            courier.post(f"/shipments/{scan.shipment_id}/scans", scan.body)
        except Exception as error:  # noqa: BLE001 - noted on the scan, counted in the figures
            scan.error = str(error)[:200]
        scan.answered = time.time()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for courier in self._couriers:
            courier.close()


def open_loop(
    scans: list[Scan], rate: int, senders: Senders, poller: ChainPoller
) -> dict[str, Any]:
    """Send `scans` at `rate` per second on schedule; wait until every one is visible."""
    started = time.time() + 0.05
    for n, scan in enumerate(scans):
        scan.due = started + n / rate
        if (ahead := scan.due - time.time()) > 0:
            time.sleep(ahead)
        poller.expect(scan)
        senders.submit(scan)
    deadline = time.monotonic() + VISIBLE_TIMEOUT_S
    while poller.outstanding():
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return {"sent_s": round(time.time() - started, 2)}


# ------------------------------------------------------------------ figures


def figures(scans: list[Scan], watch: RecordWatch, rate: int) -> dict[str, Any]:
    ok = [s for s in scans if not s.error and s.visible]
    visible = [(s.visible - s.sent) * 1e3 for s in ok]
    api = [(s.answered - s.sent) * 1e3 for s in scans if not s.error]
    lateness = [(s.sent - s.due) * 1e3 for s in scans if s.sent]
    store_publish, publish_visible, sent_recorded = [], [], []
    for scan in ok:
        published = watch.published(scan.coi, scan.nth)
        if published is None:
            continue
        store_publish.append((published.created - published.recorded) * 1e3)
        publish_visible.append((scan.visible - published.created) * 1e3)
        sent_recorded.append((published.recorded - scan.sent) * 1e3)

    def p(values: list[float], fraction: float) -> float | None:
        return round(percentile(values, fraction), 1) if values else None

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    return {
        "rate_per_s": rate,
        "scans": len(scans),
        "errors": sum(1 for s in scans if s.error),
        "first_error": next((s.error for s in scans if s.error), ""),
        "not_visible": sum(1 for s in scans if not s.error and not s.visible),
        "visible_p50_ms": p(visible, 0.5),
        "visible_p99_ms": p(visible, 0.99),
        "visible_max_ms": round(max(visible), 1) if visible else None,
        "resolution_p50_ms": median([s.resolution * 1e3 for s in ok]),
        "api_p50_ms": p(api, 0.5),
        "api_p99_ms": p(api, 0.99),
        "sent_to_recorded_p50_ms": median(sent_recorded),
        "store_to_publish_p50_ms": median(store_publish),
        "store_to_publish_p99_ms": p(store_publish, 0.99),
        "publish_to_visible_p50_ms": median(publish_visible),
        "publish_to_visible_p99_ms": p(publish_visible, 0.99),
        "matched_records": len(store_publish),
        "schedule_late_p99_ms": p(lateness, 0.99),
    }


def measure(
    quick: bool = False, rates: tuple[int, ...] = RATES, seconds: float | None = None
) -> dict[str, Any]:
    def duration(rate: int) -> float:
        return seconds if seconds is not None else QUICK_SECONDS if quick else SECONDS[rate]

    needed = sum(int(rate * duration(rate)) for rate in rates)
    patients = max(10, -(-needed // BAGS))  # >= 10 shipments: one chain's scans stay apart
    load_start = os.getloadavg()
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="v2v-bench-scan-") as scratch,
        consortium(Path(scratch)) as running,
    ):
        started_s = time.monotonic() - began
        prepared = prepare(running, patients)
        prepared_s = time.monotonic() - began - started_s
        watch = RecordWatch(running.bootstrap)
        poller = ChainPoller(running.clients, watch)
        senders = Senders(running.clients)
        try:
            for shipment in prepared:  # every chain shows its shipment before the timing
                stage = ""
                deadline = time.monotonic() + VISIBLE_TIMEOUT_S
                while stage != "shipping-to-manufacturing" and time.monotonic() < deadline:
                    stage = poller.chain(shipment.coi).stage
                    if stage != "shipping-to-manufacturing":
                        time.sleep(0.05)
            senders.warm({shipment.courier_id for shipment in prepared})
            queue = scans_of(prepared)
            per_rate = []
            for rate in rates:
                count = int(rate * duration(rate))
                batch, queue = queue[:count], queue[count:]
                polls = poller.polls
                timing = open_loop(batch, rate, senders, poller)
                timing["getchain_polls_per_scan"] = round((poller.polls - polls) / len(batch), 1)
                time.sleep(0.5)  # the last records reach our own consumer
                per_rate.append({**figures(batch, watch, rate), **timing})
        finally:
            senders.close()
            poller.close()
            watch.close()
    return {
        "quick": quick,
        "store": "SQLite (the demo's default)",
        "patients_prepared": patients,
        "bags_per_shipment": BAGS,
        "startup_s": round(started_s, 1),
        "prepare_s": round(prepared_s, 1),
        "rates": per_rate,
        "getchain_polls": poller.polls,
        "target_p99_ms_at_100": TARGET_P99_MS,
        "target_store_to_publish_p50_ms": TARGET_STORE_PUBLISH_P50_MS,
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    lines: list[tuple[str, str, str, bool | None]] = []
    for figure in result["rates"]:
        rate = figure["rate_per_s"]
        p99 = figure["visible_p99_ms"]
        at_target = rate == 100
        lines += [
            (f"scan->visible p50 ms, {rate}/s", _ms(figure["visible_p50_ms"]), "", None),
            (
                f"scan->visible p99 ms, {rate}/s",
                _ms(p99),
                f"<= {TARGET_P99_MS:g}" if at_target else "",
                (p99 is not None and p99 <= TARGET_P99_MS and not figure["errors"])
                if at_target
                else None,
            ),
            (f"  scan API response p50 ms, {rate}/s", _ms(figure["api_p50_ms"]), "", None),
            (f"  scan API response p99 ms, {rate}/s", _ms(figure["api_p99_ms"]), "", None),
            (
                f"  store->publish p50 ms, {rate}/s",
                _ms(figure["store_to_publish_p50_ms"]),
                f"<= {TARGET_STORE_PUBLISH_P50_MS:g}",
                figure["store_to_publish_p50_ms"] is not None
                and figure["store_to_publish_p50_ms"] <= TARGET_STORE_PUBLISH_P50_MS,
            ),
            (
                f"  publish->visible p50 ms, {rate}/s",
                _ms(figure["publish_to_visible_p50_ms"]),
                "",
                None,
            ),
            (f"  poll resolution p50 ms, {rate}/s", _ms(figure["resolution_p50_ms"]), "", None),
            (
                f"  sent late vs schedule p99 ms, {rate}/s",
                _ms(figure["schedule_late_p99_ms"]),
                "",
                None,
            ),
            (
                f"  GetChain polls per scan, {rate}/s",
                f"{figure.get('getchain_polls_per_scan', 0):.1f}",
                "",
                None,
            ),
        ]
        if figure["errors"] or figure["not_visible"]:
            lines.append(
                (
                    f"  scans refused / never visible, {rate}/s",
                    f"{figure['errors']} / {figure['not_visible']}",
                    "0 / 0",
                    False,
                )
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 s per rate")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per rate")
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    arguments = parser.parse_args()
    rates = tuple(int(rate) for rate in arguments.rates.split(","))
    result = measure(arguments.quick, rates, arguments.seconds)
    print(f"{'measure':42} {'value':>10}  {'target':>8}  ok")
    for name, value, target, ok in rows(result):
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:42} {value:>10}  {target:>8}  {mark}")
    for figure in result["rates"]:
        if figure["first_error"]:
            print(f"first error at {figure['rate_per_s']}/s: {figure['first_error']}")
    print(
        f"{result['patients_prepared']} shipments x {BAGS} bags prepared in"
        f" {result['prepare_s']} s (start-up {result['startup_s']} s);"
        f" {result['getchain_polls']} GetChain polls; load average"
        f" {result['load_average_at_start']} -> {result['load_average_at_end']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
