"""Command latency against stream length: a logistics command on a Shipment at 0 and at 1,000
stream events, with the kernel's aggregate cache off and on, SQLite and PostgreSQL, one run
(issue 18 item 2; target: command p50 at 1,000 events <= 1.5x that at 0).

    uv run --frozen python bench/bench_stream_length.py [--quick]

In process, real stores: the logistics application itself (`v2v_testkit.logistics.build_app`,
as its unit tests build it, with its courier index) on a fresh SQLite file or PostgreSQL
database per store and cache setting (PostgreSQL resolved as the tests resolve it); no gRPC or
HTTP in front, so the figures are the application's (read, decide, save) alone. Tracing on, no
exporter, as a service runs.

The command: `upload_readings` of one temperature reading (in range: one event per command).
  at 0       fresh shipments, each taking SHORT_SPAN commands (streams of 1-SHORT_SPAN+1 events)
  at 1,000   one shipment padded to 1,000 events (readings recorded in batches), then its
             commands (streams of 1,000 to 1,000 + WINDOW events); its first command, which
             fills the cache, is not timed (a service's cache is warm in its steady state)
The two are interleaved command by command (a command at 0, one at 1,000, ...), so both see the
same machine load. Cache off: V2V_AGGREGATE_CACHE_SIZE=0 (every command replays the whole
stream, as before issue 18); on: the default size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.shipment import Shipment
from v2v_logistics.domain.values import Reading
from v2v_platform import telemetry
from v2v_platform.aggregate_cache import DEFAULT_SIZE, SETTING
from v2v_platform.config import EventStoreSettings
from v2v_platform.testing import infra
from v2v_platform.testing.infra import find_repo_root, resolve_postgres
from v2v_testkit.logistics import Clock, InMemoryFacts, build_app, din, new_shipment, site_user

ROOT = Path(__file__).resolve().parents[1]
LONG = 1_000
WINDOW, QUICK_WINDOW = 200, 40
SHORT_SPAN = 20
PAD_BATCH = 100
TARGET_RATIO = 1.5
CACHE = {"off": 0, "on": DEFAULT_SIZE}
LOGGER = "LOGGER-5"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Commands:
    """Temperature uploads on the logistics application, one reading (one event) each."""

    def __init__(self, app: LogisticsApplication, facts: InMemoryFacts, clock: Clock) -> None:
        self.app, self.facts = app, facts
        self.base = clock() - timedelta(days=2)
        self.readings = 0
        self.units = 0

    def reading(self) -> Reading:
        self.readings += 1
        return Reading(self.base + timedelta(milliseconds=self.readings), 4.0, LOGGER)

    def new_shipment(self) -> str:
        self.units += 1
        unit = self.facts.package(din(self.units))
        return self.app.create_shipment(new_shipment([unit]), site_user()).shipment_id

    def upload(self, shipment_id: str) -> float:
        """One command; its latency in ms."""
        reading = self.reading()
        started = time.perf_counter()
        self.app.upload_readings(shipment_id, [reading], site_user())
        return (time.perf_counter() - started) * 1000

    def pad(self, shipment_id: str, events: int) -> None:
        """Readings recorded until the shipment's stream holds `events` events."""
        while True:
            shipment = self.app.find(Shipment, uuid.UUID(shipment_id))
            assert shipment is not None
            missing = events - shipment.version
            if missing <= 0:
                return
            for _ in range(min(missing, PAD_BATCH)):
                shipment.record_readings([self.reading()], self.app.rules, site_user())
            self.app.save(shipment)


def measure_store(env: dict[str, str], records_env: dict[str, str], window: int) -> dict[str, Any]:
    """p50/p99 (ms) of the command at 0 and at LONG stream events, for one store + setting."""
    facts, clock = InMemoryFacts(), Clock()
    app = build_app(facts, clock, env=env, unpublished_env=records_env)
    try:
        commands = Commands(app, facts, clock)
        long_id = commands.new_shipment()
        commands.pad(long_id, LONG)
        commands.upload(long_id)  # fills the cache (cache on); not timed
        at_0: list[float] = []
        at_long: list[float] = []
        short_id = ""
        for n in range(window):
            if n % SHORT_SPAN == 0:
                short_id = commands.new_shipment()
            at_0.append(commands.upload(short_id))
            at_long.append(commands.upload(long_id))
        final = app.find(Shipment, uuid.UUID(long_id))
        assert final is not None
        figures: dict[str, Any] = {"commands_per_length": window}
        for name, latencies, streams in (
            ("at_0", at_0, f"1-{SHORT_SPAN + 1}"),
            (f"at_{LONG}", at_long, f"{LONG}-{final.version}"),
        ):
            figures[name] = {
                "p50_ms": round(statistics.median(latencies), 3),
                "p99_ms": round(percentile(latencies, 0.99), 3),
                "stream_events": streams,
            }
        figures["ratio_p50"] = round(figures[f"at_{LONG}"]["p50_ms"] / figures["at_0"]["p50_ms"], 3)
        return figures
    finally:
        app.close()
        app.unpublished.close()


@contextmanager
def sqlite_stores(scratch: Path) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    name = uuid.uuid4().hex[:8]
    yield (
        EventStoreSettings(sqlite_path=scratch / f"{name}.sqlite").eventsourcing_env(),
        EventStoreSettings(sqlite_path=scratch / f"{name}.registers.sqlite").eventsourcing_env(),
    )


@contextmanager
def postgres_stores(server_dsn: str) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    database = infra.create_database(server_dsn, prefix="v2v_bench")
    try:
        env = EventStoreSettings(postgres_dsn=database.dsn).eventsourcing_env()
        yield env, env  # one database, each application its own tables, as a service
    finally:
        infra.drop_database(server_dsn, database.dbname)


def measure(quick: bool = False) -> dict[str, Any]:
    """Per store (SQLite, PostgreSQL) and cache setting (off, on): the command's p50/p99 at 0
    and at 1,000 stream events and their ratio, with the load average before and after."""
    telemetry.setup_tracing("bench-stream-length", "none")
    window = QUICK_WINDOW if quick else WINDOW
    postgres = resolve_postgres(find_repo_root(ROOT))
    result: dict[str, Any] = {
        "command": "logistics upload_readings, one reading (one event), in process",
        "target_ratio": TARGET_RATIO,
        "long_stream_events": LONG,
        "cache_size_on": DEFAULT_SIZE,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "stores": {},
    }
    try:
        with tempfile.TemporaryDirectory(prefix="v2v-bench-stream-") as scratch:
            stores: dict[str, Callable[[], Any]] = {
                "sqlite": lambda: sqlite_stores(Path(scratch)),
                "postgresql": lambda: postgres_stores(postgres.address),
            }
            for store, make in stores.items():
                for setting, size in CACHE.items():
                    load_before = [round(x, 2) for x in os.getloadavg()]
                    with make() as (env, records_env):
                        figures = measure_store(
                            {**env, SETTING: str(size)}, {**records_env, SETTING: str(size)}, window
                        )
                    figures["load_before"] = load_before
                    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
                    result["stores"].setdefault(store, {})[f"cache_{setting}"] = figures
    finally:
        postgres.close()
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """Per store and cache setting: p50/p99 at 0 and at 1,000 events, then the ratio of the
    p50s beside the target (judged with the cache on; cache off is the before)."""
    target = result["target_ratio"]
    long = result["long_stream_events"]
    lines: list[tuple[str, str, str, bool | None]] = []
    for store, settings in result["stores"].items():
        for setting, figures in settings.items():
            prefix = f"stream_length {store} {setting.replace('_', ' ')}"
            for length in ("at_0", f"at_{long}"):
                point = figures[length]
                lines.append(
                    (
                        f"{prefix} p50/p99 {length.replace('_', ' ')} ms",
                        f"{point['p50_ms']:.2f} / {point['p99_ms']:.2f}"
                        f" (streams {point['stream_events']})",
                        "",
                        None,
                    )
                )
            ratio = figures["ratio_p50"]
            judged = setting == "cache_on"
            lines.append(
                (
                    f"{prefix} p50 ratio {long}/0",
                    f"{ratio:.2f}x (load {figures['load_before'][0]:.2f} -> "
                    f"{figures['load_after'][0]:.2f})",
                    f"<= {target:g}x" if judged else "(before)",
                    ratio <= target if judged else None,
                )
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer commands per length")
    args = parser.parse_args()
    result = measure(quick=args.quick)
    window = result["stores"]["sqlite"]["cache_on"]["commands_per_length"]
    print(
        f"command latency vs stream length: {result['command']}; {window} commands per length,"
        f" interleaved; load average {result['load_before']} -> {result['load_after']}"
    )
    table = rows(result)
    width = max(len(name) for name, *_ in table)
    for name, value, target, ok in table:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        print(f"  {name:<{width}}  {value:<44} {target:<8} {verdict}")


if __name__ == "__main__":
    main()
