"""Chain reads: GetChain over mTLS gRPC and GET /v1/chains/{coi} over HTTP (issue 18 item 4;
target: GetChain >= 2x today's req/s at 8 clients).

    uv run --frozen python bench/bench_reads.py [--quick] [--seconds 3]

Each server is the projection core built by its own composition root
(`v2v_projection.bootstrap.bootstrap`, SQLite store, a fresh PKI) in a process of its own
(`--server`), holding a generated consortium history of 20 patients (1,056 events, folded
in-process by `ChainProjection.ingest` as the consumer does: no Kafka or PostgreSQL needed).
It serves as the service does: tracing on (no exporter), the access log at INFO (to a file),
the gRPC server of `ServiceRuntime.start_grpc` (mTLS, tracing + auth interceptors, 8 worker
threads), uvicorn for HTTP in a thread. Every request reads the same 55-event chain as the
auditor site AUDIT-1 (its certificate for gRPC, its bearer token for HTTP).

Three servers, one after the other, in this one run:
  before     the platform and projection sources of BASELINE_COMMIT (the read path as issue
             18 measured it), unpacked with `git archive` and put ahead on PYTHONPATH
             (skipped, and said, when git or the commit is not there)
  cache off  today's code with V2V_TOKEN_CACHE_SIZE=0 (every token / peer certificate
             verified in full on every request; the lean interceptors stay)
  cache on   today's code as a service runs it (default cache size)

The clients run in 2 processes of their own (`--client`; threads in each, one connection per
client thread; 1 client: one thread in the first), connected and warmed up before the first
level. For each transport and 1/8/32 clients: req/s, p50/p99 latency (ms, at the client), the
server's CPU per request (from /proc, the same window) and the cores the clients used. The
ratios at 8 clients are printed beside the target; on a loaded machine the server's CPU per
request (before / now) is the steadier figure.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[1]
SEED = 18
PATIENTS = 20
CHAIN_EVENTS = 55
SITES = ("HOSP-A:collection,infusion", "GMP-B:manufacturing", "AUDIT-1:auditor", "PROJ-1:auditor")
READER = "AUDIT-1"
LEVELS = (1, 8, 32)
TARGET_RATIO = 2.0
CACHE_ENV = "V2V_TOKEN_CACHE_SIZE"
TRANSPORTS = ("grpc", "http")
BASELINE_COMMIT = "855f94bd342367203b5ccbeebecd8ad0362543c8"
"""The last commit before issue 18 item 4 (the read path as the issue measured it)."""
BASELINE_PATHS = ("libs/platform/src", "services/projection/src")


# --- the server (a process of its own) ---------------------------------------------------


def _chain_of(history: Any) -> tuple[str, int]:
    """The COI of the generated chain with CHAIN_EVENTS events (else the closest)."""
    from collections import Counter

    from v2v_platform.envelope.codec import decode

    counts = Counter(decode(value).coi for _, _, value in history.all_records())
    coi = min(counts, key=lambda coi: (abs(counts[coi] - CHAIN_EVENTS), coi))
    return coi, counts[coi]


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[dict[str, Any]]:
    """The projection core (gRPC + HTTP) in this process, holding the history; the PKI of
    `directory` (made when missing); the verification cache as V2V_TOKEN_CACHE_SIZE says."""
    from v2v_platform.auth.pki import init_pki, parse_site_spec
    from v2v_platform.auth.tokens import issue_site_token
    from v2v_projection.bootstrap import bootstrap
    from v2v_projection.settings import ProjectionSettings
    from v2v_testkit.audit import trust_keys
    from v2v_testkit.synthetic.chains import generate_history

    pki = directory / "pki"
    if not pki.exists():
        init_pki(pki, [parse_site_spec(spec) for spec in SITES])
    history = generate_history(SEED, PATIENTS)
    trust_keys(pki, history.keys)
    coi, events = _chain_of(history)
    store = Path(tempfile.mkdtemp(prefix="store-", dir=directory)) / "projection.sqlite"
    settings = ProjectionSettings(
        site_id="PROJ-1", pki_dir=pki, sqlite_path=store, verify_workers=0
    )
    service = bootstrap(settings, rebuild=True)
    records = [(topic, 0, offset, value) for topic, offset, value in history.all_records()]
    service.projection.ingest(records)
    service.queries.chain(_auditor_scope(), coi)  # there, and readable by the auditor
    running = service.start_grpc("127.0.0.1:0")
    config = uvicorn.Config(service.http_app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bench-http", daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    http_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield {
            "pki": str(pki),
            "coi": coi,
            "events": events,
            "grpc_port": running.port,
            "http_port": http_port,
            "token": issue_site_token(pki, READER),
            "pid": os.getpid(),
        }
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.stop()


def serve(directory: Path) -> None:
    """Run by `--server DIR`: serve as a service does (tracing on, no exporter; the access
    log at INFO to a file), print the server's figures as JSON, stop at end of input."""
    from v2v_platform import telemetry
    from v2v_projection.writer import use_short_switch_interval

    telemetry.setup_tracing("bench-reads", "none")
    use_short_switch_interval()
    access = logging.getLogger("v2v.access")
    access.addHandler(logging.FileHandler(directory / f"access-{os.getpid()}.log"))
    access.setLevel(logging.INFO)
    with serving(directory) as server:
        print(json.dumps(server), flush=True)
        sys.stdin.read()


def baseline_sources(directory: Path) -> Path | None:
    """The platform and projection sources of BASELINE_COMMIT (the read path before issue 18
    item 4), unpacked under `directory`; None when git or the commit is not there."""
    target = directory / "baseline"
    try:
        archive = subprocess.run(
            ["git", "archive", BASELINE_COMMIT, *BASELINE_PATHS],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


@contextlib.contextmanager
def server_process(
    directory: Path, cache: str, sources: Path | None = None
) -> Iterator[dict[str, Any]]:
    """`serve` in its own process: V2V_TOKEN_CACHE_SIZE=`cache` ("" = the default); the
    packages of `sources` (the baseline) ahead of the workspace's when given."""
    env = {**os.environ, CACHE_ENV: cache}
    if not cache:
        env.pop(CACHE_ENV)
    if sources is not None:
        paths = [str(sources / path) for path in BASELINE_PATHS]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(":")
    process = subprocess.Popen(
        [sys.executable, __file__, "--server", str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the server process ended ({process.wait()})")
        yield json.loads(line)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _auditor_scope() -> Any:
    from v2v_platform.auth.identity import CallerIdentity, Role
    from v2v_platform.scope import Scope

    return Scope.of(CallerIdentity(READER, frozenset({Role.AUDITOR})))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


CLIENT_PROCESSES = 2


def _shares(clients: int) -> list[int]:
    """How many of `clients` each client process runs (1 client: the first process alone)."""
    n = CLIENT_PROCESSES
    return [clients // n + (1 if i < clients % n else 0) for i in range(n)]


def _load(
    server: dict[str, Any], levels: tuple[int, ...], seconds: float
) -> dict[str, list[dict[str, Any]]]:
    """For each transport, each of `levels` clients, one after the other, for `seconds`
    against `server`; the clients in CLIENT_PROCESSES processes, connected and warmed up
    once (both transports)."""
    plan = {**server, "transports": TRANSPORTS, "seconds": seconds}
    spawned = []
    for index in range(CLIENT_PROCESSES):
        job = {**plan, "shares": [_shares(clients)[index] for clients in levels]}
        spawned.append(
            subprocess.Popen(
                [sys.executable, __file__, "--client", json.dumps(job)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for process in spawned:  # each says "ready" once its clients are connected and warm
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return {
            transport: [_level(server, spawned, clients, seconds) for clients in levels]
            for transport in TRANSPORTS
        }
    finally:
        for process in spawned:
            assert process.stdin is not None
            process.stdin.close()
            if process.wait(timeout=60) != 0:
                raise RuntimeError(f"a client process failed ({process.returncode})")


def _level(
    server: dict[str, Any], spawned: list[subprocess.Popen[str]], clients: int, seconds: float
) -> dict[str, Any]:
    start_at = time.time() + 0.2
    for process in spawned:
        assert process.stdin is not None
        process.stdin.write(f"{start_at}\n")
        process.stdin.flush()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = _cpu_seconds(server["pid"])
    time.sleep(seconds)
    cpu_after = _cpu_seconds(server["pid"])
    results = []
    for process in spawned:
        assert process.stdout is not None
        results.append(json.loads(process.stdout.readline()))
    latencies = sorted(ms for result in results for ms in result["latencies_ms"])
    server_cpu = cpu_after - cpu_before
    return {
        "clients": clients,
        "req_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(_percentile(latencies, 0.50), 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
        "errors": sum(result["errors"] for result in results),
        "first_errors": sorted({e for result in results for e in result["first_errors"]})[:3],
        "server_cpu_ms_per_req": round(server_cpu * 1000 / max(1, len(latencies)), 3),
        "server_cores": round(server_cpu / seconds, 2),
        "client_cores": round(sum(result["cpu_s"] for result in results) / seconds, 2),
    }


def measure(quick: bool = False, seconds: float | None = None) -> dict[str, Any]:
    window = seconds if seconds is not None else (0.5 if quick else 3.0)
    load_before = list(os.getloadavg())
    figures: dict[str, Any] = {"modes": {}, "baseline_commit": BASELINE_COMMIT}
    with tempfile.TemporaryDirectory(prefix="v2v-bench-reads-") as temporary:
        directory = Path(temporary)
        sources = baseline_sources(directory)
        modes: list[tuple[str, str, Path | None]] = [("off", "0", None), ("on", "", None)]
        if sources is not None:
            modes.insert(0, ("today", "", sources))
        for mode, cache, packages in modes:
            with server_process(directory, cache, packages) as server:
                figures["coi_events"] = server["events"]
                figures["modes"][mode] = _load(server, LEVELS, window)
    figures["ratio_on_vs_off_at_8"] = {
        transport: _ratio(figures, "on", "off", transport) for transport in TRANSPORTS
    }
    if "today" in figures["modes"]:
        figures["ratio_on_vs_today_at_8"] = {
            transport: _ratio(figures, "on", "today", transport) for transport in TRANSPORTS
        }
        figures["server_cpu_per_req_today_vs_on_at_8"] = {
            transport: round(
                _at(figures, "today", transport, 8, "server_cpu_ms_per_req")
                / _at(figures, "on", transport, 8, "server_cpu_ms_per_req"),
                2,
            )
            for transport in TRANSPORTS
        }
    figures["seconds_per_level"] = window
    figures["load_average_before"] = load_before
    figures["load_average_after"] = list(os.getloadavg())
    return figures


def _ratio(figures: dict[str, Any], mode: str, base: str, transport: str) -> float:
    return round(_at(figures, mode, transport, 8) / _at(figures, base, transport, 8), 2)


def _at(
    figures: dict[str, Any], mode: str, transport: str, clients: int, name: str = "req_per_s"
) -> float:
    for level in figures["modes"][mode][transport]:
        if level["clients"] == clients:
            return float(level[name])
    raise KeyError(clients)


MODE_NAMES = {"today": f"before ({BASELINE_COMMIT[:7]})", "off": "cache off", "on": "cache on"}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    lines: list[tuple[str, str, str, bool | None]] = []
    names = {"grpc": "GetChain gRPC", "http": "GET /v1/chains/{coi}"}
    for transport, name in names.items():
        for mode, figures in result["modes"].items():
            for level in figures[transport]:
                lines.append(
                    (
                        f"{name}, {MODE_NAMES[mode]}, {level['clients']} clients",
                        f"{level['req_per_s']:,.0f} req/s p50 {level['p50_ms']:.2f} "
                        f"p99 {level['p99_ms']:.2f} ms; server "
                        f"{level['server_cpu_ms_per_req']:.2f} ms CPU/req; clients "
                        f"{level['client_cores']:.2f} cores",
                        "",
                        None if not level["errors"] else False,
                    )
                )
    target = f">= {TARGET_RATIO:.0f}x"
    today = result.get("ratio_on_vs_today_at_8")
    if today is None:
        missing = f"not measured: no git or commit {BASELINE_COMMIT[:7]}"
        lines.append(("GetChain now / before, 8 clients", missing, target, None))
    else:
        grpc_ratio = today["grpc"]
        lines.append(
            (
                "GetChain now / before, 8 clients",
                f"{grpc_ratio:.2f}x",
                target,
                grpc_ratio >= TARGET_RATIO,
            )
        )
        lines.append(("HTTP chain now / before, 8 clients", f"{today['http']:.2f}x", "", None))
        cpu = result["server_cpu_per_req_today_vs_on_at_8"]
        lines.append(
            (
                "server CPU/req before / now, 8 clients",
                f"gRPC {cpu['grpc']:.2f}x, HTTP {cpu['http']:.2f}x",
                "",
                None,
            )
        )
    on_off = result["ratio_on_vs_off_at_8"]
    lines.append(
        (
            "GetChain cache on / off, 8 clients",
            f"{on_off['grpc']:.2f}x",
            target,
            on_off["grpc"] >= TARGET_RATIO,
        )
    )
    lines.append(("HTTP chain cache on / off, 8 clients", f"{on_off['http']:.2f}x", "", None))
    before, after = result["load_average_before"], result["load_average_after"]
    lines.append(("load average before/after", f"{before[0]:.2f} / {after[0]:.2f}", "", None))
    return lines


# --- the clients (separate processes) -----------------------------------------------------


def _grpc_caller(job: dict[str, Any]) -> Any:
    from v2v.projection.v1 import projection_service_pb2 as pb
    from v2v.projection.v1 import projection_service_pb2_grpc as pb_grpc
    from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel

    credentials = channel_credentials(SiteTlsFiles.for_site(Path(job["pki"]), READER))
    channel = secure_channel(f"127.0.0.1:{job['grpc_port']}", credentials, server_name="localhost")
    stub = pb_grpc.ChainQueryServiceStub(channel)
    request = pb.GetChainRequest(coi=job["coi"])

    def call() -> bool:
        reply = stub.GetChain(request, timeout=30)
        return bool(reply.chain.coi == job["coi"])

    return call


def _http_caller(job: dict[str, Any]) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", job["http_port"], timeout=30)
    path = f"/v1/chains/{job['coi']}"
    headers = {"Authorization": f"Bearer {job['token']}"}

    def call() -> bool:
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # uvicorn closes a keep-alive connection idle for 5 s (one idle during the
            # smaller levels): connect again, as a client does
            connection.close()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:120]!r}")
        return len(body) > 0

    return call


def client(job: dict[str, Any]) -> None:
    """Run by `--client`: connects max(shares) clients of each transport and warms them up,
    says "ready"; then for each transport and level reads the start time, runs
    `shares[level]` clients for the window and prints their figures (one JSON line)."""
    makers = {"grpc": _grpc_caller, "http": _http_caller}
    callers = {
        transport: [makers[transport](job) for _ in range(max(job["shares"]))]
        for transport in job["transports"]
    }
    for call in (call for mine in callers.values() for call in mine):
        for _ in range(3):  # connect, handshake, first calls
            call()
    print("ready", flush=True)
    for transport in job["transports"]:
        for share in job["shares"]:
            start_at = float(sys.stdin.readline())
            level = _run_level(callers[transport][:share], start_at, job["seconds"])
            print(json.dumps(level), flush=True)


def _run_level(callers: list[Any], start_at: float, seconds: float) -> dict[str, Any]:
    end_at = start_at + seconds
    latencies: list[list[float]] = [[] for _ in callers]
    errors = [0] * len(callers)
    failures: list[str] = []

    def run(index: int) -> None:
        call = callers[index]
        while time.time() < start_at:
            time.sleep(0.001)
        mine = latencies[index]
        while True:
            began = time.perf_counter()
            if time.time() >= end_at:
                return
            try:
                ok = call()
            except Exception as error:  # noqa: BLE001 - counted, the run goes on
                ok = False
                failures.append(repr(error)[:200])
            if ok:
                mine.append((time.perf_counter() - began) * 1000)
            else:
                errors[index] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(callers))]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = time.process_time()
    for thread in threads:
        thread.join()
    time.sleep(max(0.0, end_at - time.time()))
    cpu = time.process_time() - cpu_before
    return {
        "latencies_ms": [ms for mine in latencies for ms in mine],
        "errors": sum(errors),
        "first_errors": sorted(set(failures))[:3],
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None, help="per level (default 3)")
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--server", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server is not None:
        serve(Path(args.server))
        return
    if args.client is not None:
        client(json.loads(args.client))
        return
    result = measure(args.quick, args.seconds)
    print(f"{'measure':44} {'value':>76}  {'target':>7}  ok")
    for name, value, target, ok in rows(result):
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:44} {value:>76}  {target:>7}  {mark}")
    print(f"chain of {result['coi_events']} events; {result['seconds_per_level']} s per level")


if __name__ == "__main__":
    main()
