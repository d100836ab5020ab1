"""`make up` / `make down`: the embedded consortium started and left running, to look around.

`up` starts what `make demo` starts (the data directory's local Kafka broker unless
V2V_KAFKA_BOOTSTRAP names one, every service, SQLite event stores or PostgreSQL with
V2V_POSTGRES_DSN) in the same data directory and layout, so the demo's patients and `up`'s are
one consortium; seeds simulated patients (by default 12 on a consortium without any: each of
the six special cases on a patient of its own, a temperature excursion among them, and
a few chains per site for the KPI charts, in about 20 s here); records what it started in
`<data-dir>/up.json` and returns, the services running on in their own sessions. It prints
where to look: the console and its login, the courier page and a courier's login, the gRPC
targets and certificates, the audit commands. `down` stops what `up` recorded; `status` says
what runs and whether it is ready.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import jwt
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from v2v.projection.v1 import projection_service_pb2 as projection_pb
from v2v.projection.v1 import projection_service_pb2_grpc as projection_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.processes import ServiceProcess
from v2v_simulator.broker import LocalBroker
from v2v_simulator.clients import Clients
from v2v_simulator.consortium import COURIERS, Consortium
from v2v_simulator.demo import DemoOptions, DemoState, load_state
from v2v_simulator.journey.context import World
from v2v_simulator.runner import DEFAULT_WORKERS, run_journeys
from v2v_simulator.scenarios import plan_patients
from v2v_simulator.setup import (
    COURIER_PASSWORD,
    ensure_courier_tokens,
    ensure_pki,
    ensure_signers,
)
from v2v_simulator.stores import Stores
from v2v_simulator.summary import settled
from v2v_simulator.system import System
from v2v_simulator.up_record import (
    DEFAULT_DATA_DIR,
    ServiceRecord,
    UpError,
    UpRecord,
    UpSystem,
    attach,
    how,
    load_ports,
    save_ports,
    shown,
    stop_services,
)

DEFAULT_PATIENTS = 12
"""Patients seeded on a consortium that has none yet (a fresh data directory)."""
TOKEN_DAYS = 7
RENEW_BEFORE = datetime.timedelta(days=1)
TOKENS_DIR = "tokens"
PROJECTION_CATCH_UP_S = 120.0
EXIT_NOT_UP = 3


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    patients: int | None = None  # None: DEFAULT_PATIENTS when the consortium has none yet
    hospitals: int = 2
    gmp_sites: int = 1
    in_house: int = 1
    seed: int = 7
    workers: int = DEFAULT_WORKERS

    def demo_options(self) -> DemoOptions:
        return DemoOptions(
            self.patients or 0,
            self.data_dir,
            self.hospitals,
            self.gmp_sites,
            self.in_house,
            self.seed,
            self.workers,
        )


# ---------------------------------------------------------------- up


def run_up(options: UpOptions, console: Console) -> int:
    """Start the consortium (or find it up), seed patients, print where to look. 0 when it is
    up (and the patients asked for were seeded)."""
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    dsn = os.environ.get("V2V_POSTGRES_DSN") or None
    stores = Stores(data_dir, dsn)
    record = UpRecord.load(data_dir)
    broker_was_ours = False
    if record is not None and not record.dead():
        console.print(f"[green]the consortium is already up[/] (started {record.started_at})")
        state = load_state(options.demo_options(), data_dir)
        system = attach(record, stores)
    else:
        if record is not None:
            broker_was_ours = _forget_stale(record, data_dir, console)
        state = load_state(options.demo_options(), data_dir)
        system, record = _start(state, data_dir, stores, broker_was_ours, console)
    code = 0
    courier_tokens = ensure_courier_tokens(system, data_dir)
    patients = options.patients
    if patients is None:
        patients = DEFAULT_PATIENTS if state.patients_so_far == 0 else 0
    if patients:
        code = _seed(system, state, patients, options, courier_tokens, console)
    site_tokens = ensure_site_tokens(system.pki, data_dir, _token_sites(system.consortium))
    print_info(record, state, site_tokens, courier_tokens, console)
    return code


def _forget_stale(record: UpRecord, data_dir: Path, console: Console) -> bool:
    """A record some of whose services stopped running (a crash, a reboot): stop the others
    and forget it. Whether the broker was `up`'s (the next `up` owns it then)."""
    dead = ", ".join(s.name for s in record.dead())
    console.print(f"[yellow]{UpRecord.path(data_dir)}: not running any more: {dead}[/]")
    alive = record.alive()
    if alive:
        console.print(f"stopping the {len(alive)} still running, to start everything again")
        stop_services(alive)
    UpRecord.remove(data_dir)
    return record.broker_started


def _start(
    state: DemoState, data_dir: Path, stores: Stores, broker_was_ours: bool, console: Console
) -> tuple[System, UpRecord]:
    consortium = state.consortium()
    pki = data_dir / "pki"
    if ensure_pki(pki, consortium):
        console.print(f"created the consortium PKI in {pki}")
    external = os.environ.get("V2V_KAFKA_BOOTSTRAP", "").strip()
    broker = LocalBroker(data_dir)
    running_already = bool(external) or broker.running()
    started_broker = not running_already or (broker_was_ours and not external)
    console.print("using the Kafka broker" if running_already else "starting the Kafka broker ...")
    bootstrap = external or broker.up()
    system = UpSystem(
        consortium, pki, stores, bootstrap, data_dir / "logs", preferred_ports=load_ports(data_dir)
    )
    system.define_all()
    ensure_signers(system)
    console.print(f"starting {len(system.services)} services (logs: {system.log_dir}/*.log)")
    try:
        system.start(announce=lambda line: console.print(f"  {line}"))
    except BaseException as error:
        failing = _failing(system, str(error))
        system.stop()
        if started_broker:
            broker.down()
        if isinstance(error, Exception):
            raise UpError(f"{error}\n{failing}\neverything `up` started was stopped") from error
        raise
    save_ports(data_dir, system.services.values())
    record = UpRecord(
        data_dir=str(data_dir),
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        kafka_bootstrap=bootstrap,
        broker_started=started_broker,
        store="postgresql" if stores.postgres_dsn else "sqlite",
        hospitals=state.hospitals,
        gmp_sites=state.gmp_sites,
        in_house=state.in_house,
        services=[ServiceRecord.of(process) for process in system.services.values()],
    )
    record.save(data_dir)
    return system, record


def _failing(system: System, message: str) -> str:
    """Which services failed, with their logs: those that exited; when none did, those the
    error names or that are not ready."""
    started = [p for p in system.services.values() if p.popen is not None]
    exited = [p for p in started if p.popen is not None and p.popen.poll() is not None]
    lines = [f"  {p.name} exited: log {p.log}" for p in exited]
    if not exited:
        lines = [
            f"  {p.name} not ready: log {p.log}"
            for p in started
            if p.name in message or not p.http_ready()
        ]
    return "failed service(s):\n" + "\n".join(lines) if lines else f"logs: {system.log_dir}"


def _seed(
    system: System,
    state: DemoState,
    patients: int,
    options: UpOptions,
    courier_tokens: dict[str, str],
    console: Console,
) -> int:
    consortium, data_dir = system.consortium, system.stores.data_dir
    plans = plan_patients(consortium, patients, state.seed, state.patients_so_far + 1)
    state.patients_so_far += patients
    state.save(data_dir)
    clients = Clients(system.pki, system, consortium, courier_tokens)
    try:
        console.print(f"seeding {patients} simulated patients ({options.workers} at a time)")
        result = run_journeys(World(consortium, clients), plans, options.workers, console)
        if result.failure is not None:
            console.print(f"[red]seeding stopped: {result.failure}[/] (logs: {system.log_dir})")
            return 1
        try:
            settled(clients, result.journeys, PROJECTION_CATCH_UP_S)
        except TimeoutError as error:
            console.print(f"[yellow]{error}[/]")
        console.print(f"seeded {len(result.journeys)} patients in {result.elapsed_s:.0f}s")
        return 0
    finally:
        clients.close()


# ---------------------------------------------------------------- logins


def _token_sites(consortium: Consortium) -> list[str]:
    """The auditor (reads every chain) and the first hospital (reads its own)."""
    return [consortium.auditor_site, consortium.hospitals[0].site_id]


def token_expiry(token: str) -> datetime.datetime | None:
    """When a site token expires (None when it is not a readable token)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return datetime.datetime.fromtimestamp(int(claims["exp"]), datetime.UTC)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None


def ensure_site_tokens(
    pki: Path, data_dir: Path, sites: list[str]
) -> dict[str, tuple[Path, datetime.datetime]]:
    """`<data-dir>/tokens/<site>.token` for each site (owner-readable only), issued anew when
    missing or expiring within a day; site -> (path, expiry)."""
    folder = data_dir / TOKENS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    found = {}
    now = datetime.datetime.now(datetime.UTC)
    for site in sites:
        path = folder / f"{site}.token"
        expiry = token_expiry(path.read_text().strip()) if path.is_file() else None
        if expiry is None or expiry - now < RENEW_BEFORE:
            token = issue_site_token(pki, site, days=TOKEN_DAYS)
            path.write_text(token + "\n")
            path.chmod(0o600)
            expiry = token_expiry(token)
            assert expiry is not None
        found[site] = (path, expiry)
    return found


# ---------------------------------------------------------------- what to print


def v2v_command() -> str:
    """How to run the `v2v` command from here: `uv run v2v` with uv on the PATH (a uv that
    `make` installed under the repository is named by its path), else the environment's."""
    uv = shutil.which("uv")
    if uv is None:
        return shown(Path(sys.executable).parent / "v2v")
    local = shown(Path(uv))
    return f"{local} run v2v" if not Path(local).is_absolute() else "uv run v2v"


def example_coi(record: UpRecord) -> str | None:
    """A chain to look at: one with alerts when there is one (asked as the auditor)."""
    auditor = record.consortium.auditor_site
    target = record.service("projection", auditor).grpc_target
    pki = Path(record.data_dir) / "pki"
    try:
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, auditor))
        with secure_channel(target, credentials) as channel:
            stub = projection_grpc.ChainQueryServiceStub(channel)
            for alerts in (True, None):
                request = projection_pb.ListChainsRequest(page_size=1, has_alerts=alerts)
                page = stub.ListChains(request, timeout=5)
                if page.chains:
                    return str(page.chains[0].coi)
    except (grpc.RpcError, OSError):
        return None
    return None


def print_info(
    record: UpRecord,
    state: DemoState,
    site_tokens: dict[str, tuple[Path, datetime.datetime]],
    courier_tokens: dict[str, str],
    console: Console,
) -> None:
    consortium = record.consortium
    data_dir = Path(record.data_dir)
    pki = shown(data_dir / "pki")
    projection = record.service("projection", consortium.auditor_site)
    logistics = record.service("logistics", consortium.logistics_site)
    bootstrap = record.kafka_bootstrap
    v2v = v2v_command()
    coi = example_coi(record)
    store = "PostgreSQL" if record.store == "postgresql" else "SQLite"

    def say(text: object) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    console.print()
    console.rule("[bold]the v2v consortium is up")
    say(
        f"data {shown(data_dir)} ({store} event stores, Kafka {bootstrap}),"
        f" {state.patients_so_far} simulated patients so far"
    )
    say("")
    say("[bold]Console[/]  " + f"{projection.http_base}/console/")
    say("  sign in by pasting a site token into the login page:")
    for site, (path, _expiry) in site_tokens.items():
        who = "auditor: every chain" if site == consortium.auditor_site else "its own chains"
        say(f"    {site} ({who}): [cyan]cat {shown(path)}[/]")
    expires = min(expiry for _, expiry in site_tokens.values())
    say(
        f"  tokens valid until {expires:%Y-%m-%d %H:%M} UTC; `make up` renews them;"
        f" another site's: {v2v} pki token --help"
    )
    if coi:
        say(f"  a chain to look at: {projection.http_base}/console/chains/{coi}")
    say("")
    say("[bold]Courier page[/]  " + f"{logistics.http_base}/courier")
    courier_id, name = COURIERS[0]
    say(
        f"  courier {courier_id} ({name}): token [cyan]{courier_tokens[courier_id]}[/],"
        f' password "{COURIER_PASSWORD}"'
    )
    say(
        f"  (every courier's token: {shown(data_dir / 'courier-tokens.json')};"
        " a token lasts one shift, `make up` issues new ones)"
    )
    say("")
    say(
        f"[bold]gRPC[/] (mTLS, server reflection on): CA {pki}/ca.crt, a site's client"
        f" certificate and key {pki}/sites/<SITE>/tls.crt and tls.key"
    )
    say(_targets_table(record))
    say(
        f"  e.g. grpcurl -cacert {pki}/ca.crt -cert {pki}/sites/{consortium.auditor_site}/tls.crt"
        f" -key {pki}/sites/{consortium.auditor_site}/tls.key {projection.grpc_target} list"
    )
    say("")
    say("[bold]Audit[/] (the auditor's commands, against the running broker)")
    example = coi or "<COI>"
    for line in (
        f"{v2v} audit verify --bootstrap {bootstrap} --keys {pki}",
        f"{v2v} audit export --bootstrap {bootstrap} --out history.v2vh",
        f"{v2v} audit checkpoints pull --bootstrap {bootstrap} --out checkpoints.v2vh",
        f"{v2v} audit verify --file history.v2vh --keys {pki} --checkpoints checkpoints.v2vh",
        f"{v2v} audit prove --coi {example} --bootstrap {bootstrap} --keys {pki}",
        f"{v2v} audit report --coi {example} --bootstrap {bootstrap} --keys {pki} --out chain.html",
    ):
        say(f"  {line}")
    say("")
    say(f"[bold]Stop[/] {how('down', data_dir)}    [bold]Status[/] {how('status', data_dir)}")
    say(f"[bold]Logs[/] {shown(data_dir / 'logs')}/<service>-<site>.log")


def _targets_table(record: UpRecord) -> Table:
    table = Table(box=None, padding=(0, 2), pad_edge=True)
    for column in ("service", "site", "gRPC", "HTTP"):
        table.add_column(column)
    for service in record.services:
        table.add_row(service.context, service.site_id, service.grpc_target, service.http_base)
    return table


# ---------------------------------------------------------------- down and status


def run_down(data_dir: Path, console: Console) -> int:
    data_dir = data_dir.resolve()
    record = UpRecord.load(data_dir)
    if record is None:
        console.print(f"nothing is up in {shown(data_dir)}")
        return 0
    console.print(f"stopping {len(record.services)} services ...")
    outcome = stop_services(record.services)
    if outcome.stopped:
        console.print(f"stopped: {', '.join(outcome.stopped)}")
    if outcome.killed:
        console.print(
            f"[yellow]did not stop on SIGTERM, killed: {', '.join(outcome.killed)}[/]"
            " (see their logs)"
        )
    if outcome.gone:
        console.print(f"[yellow]were not running any more: {', '.join(outcome.gone)}[/]")
    if record.broker_started:
        broker = LocalBroker(data_dir)
        if broker.running():
            console.print("stopping the Kafka broker ...")
            broker.down()
    UpRecord.remove(data_dir)
    console.print(
        f"down; the data stays in {shown(data_dir)} ({how('up', data_dir)} starts it again)"
    )
    return 0


@dataclass(frozen=True)
class ServiceStatus:
    record: ServiceRecord
    alive: bool
    ready: bool  # HTTP GET /ready answers 200
    health: str  # gRPC health: SERVING, NOT_SERVING, or why it could not be asked

    @property
    def fine(self) -> bool:
        return self.alive and self.ready and self.health == "SERVING"


def service_status(record: ServiceRecord, pki: Path, as_site: str) -> ServiceStatus:
    if not record.alive:
        return ServiceStatus(record, False, False, "-")
    probe = ServiceProcess(
        record.name,
        f"v2v_{record.context}",
        {},
        Path(record.log),
        grpc_port=record.grpc_port,
        http_port=record.http_port,
    )
    return ServiceStatus(record, True, probe.http_ready(), grpc_health(record, pki, as_site))


def grpc_health(record: ServiceRecord, pki: Path, as_site: str) -> str:
    try:
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, as_site))
        with secure_channel(record.grpc_target, credentials) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
    except grpc.RpcError as error:
        return f"unanswered ({error.code().name})"
    except OSError as error:
        return f"unanswered ({error})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def run_status(data_dir: Path, console: Console) -> int:
    """0 when every recorded service runs and is ready, 1 when one is not, 3 when nothing is
    up in `data_dir`."""
    data_dir = data_dir.resolve()
    record = UpRecord.load(data_dir)
    if record is None:
        console.print(f"nothing is up in {shown(data_dir)} (`make up` starts it)")
        return EXIT_NOT_UP
    pki = data_dir / "pki"
    auditor = record.consortium.auditor_site
    statuses = [service_status(service, pki, auditor) for service in record.services]
    table = Table(title=f"up since {record.started_at} ({shown(data_dir)})", box=None)
    for column in ("service", "pid", "process", "/ready", "gRPC health", "gRPC", "HTTP"):
        table.add_column(column, no_wrap=True)
    for status in statuses:
        service = status.record
        table.add_row(
            service.name,
            str(service.pid),
            "[green]running[/]" if status.alive else "[red]stopped[/]",
            ("[green]200[/]" if status.ready else "[red]no[/]") if status.alive else "-",
            status.health if status.health in ("SERVING", "-") else f"[red]{status.health}[/]",
            str(service.grpc_port),
            str(service.http_port),
        )
    console.print(table)
    broker = "external" if not record.broker_started else "local"
    if record.broker_started:
        broker += ", running" if LocalBroker(data_dir).running() else ", [red]not running[/]"
    console.print(f"Kafka {record.kafka_bootstrap} ({broker})")
    return 0 if all(status.fine for status in statuses) else 1


__all__ = ["UpError", "UpOptions", "run_down", "run_status", "run_up"]
