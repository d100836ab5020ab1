"""What `python -m v2v_simulator up` started, kept in `<data-dir>/up.json` so that `status`,
`down` and a second `up` find it again: per service its process id, the process's start time
(so a process id the system reused for another program is never taken for ours), its ports
and log; the broker's address and whether `up` started it. The ports are also kept in
`<data-dir>/ports.json`, which `down` leaves in place: the next `up` reuses those still free,
so the console's address does not change between `down` and `up`."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from v2v_platform.processes import STOP_GRACE_S, ServiceProcess, free_ports
from v2v_simulator.consortium import Consortium
from v2v_simulator.stores import Stores
from v2v_simulator.system import System

DEFAULT_DATA_DIR = ".v2v-data"
UP_FILE = "up.json"
PORTS_FILE = "ports.json"
RECORD_VERSION = 1
POLL_S = 0.1


class UpError(RuntimeError):
    """`up`, `down` or `status` cannot do what was asked; the message says why."""


def shown(path: Path) -> str:
    """`path` relative to the working directory when under it (what a person types)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def how(command: str, data_dir: Path) -> str:
    """The make target when `data_dir` is the default one here, else the simulator command."""
    if data_dir.resolve() == Path(DEFAULT_DATA_DIR).resolve():
        return f"make {command}"
    return f"python -m v2v_simulator {command} --data-dir {shown(data_dir)}"


# ---------------------------------------------------------------- processes by id


def start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None
    when there is no such process, it is a zombie, or this system has no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def start_time_text(ticks: int | None) -> str:
    """`start_ticks` as an ISO-8601 UTC time (now when unknown)."""
    moment = datetime.now(UTC)
    if ticks is not None:
        try:
            boot = next(
                int(line.split()[1])
                for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime ")
            )
            moment = datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)
        except (OSError, StopIteration, ValueError):
            pass
    return moment.isoformat(timespec="seconds")


def has_proc() -> bool:
    return Path("/proc/self/stat").is_file()


def process_alive(pid: int, ticks: int | None) -> bool:
    """Whether process `pid` runs and is the one that started at `ticks` (when known)."""
    if pid <= 0:
        return False
    if has_proc():
        now = start_ticks(pid)
        return now is not None and (ticks is None or now == ticks)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- the record


@dataclass
class ServiceRecord:
    name: str  # e.g. projection-AUDIT
    context: str
    site_id: str
    pid: int
    start_ticks: int | None
    started_at: str  # ISO-8601 UTC
    grpc_port: int
    http_port: int
    log: str

    @property
    def alive(self) -> bool:
        return process_alive(self.pid, self.start_ticks)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @classmethod
    def of(cls, process: ServiceProcess) -> ServiceRecord:
        assert process.popen is not None, f"{process.name} was not started"
        pid = process.popen.pid
        ticks = start_ticks(pid)
        return cls(
            name=process.name,
            context=process.module.removeprefix("v2v_"),
            site_id=process.env["V2V_SITE_ID"],
            pid=pid,
            start_ticks=ticks,
            started_at=start_time_text(ticks),
            grpc_port=process.grpc_port,
            http_port=process.http_port,
            log=str(process.log),
        )


@dataclass
class UpRecord:
    data_dir: str
    started_at: str
    kafka_bootstrap: str
    broker_started: bool  # `up` started the data directory's local broker (`down` stops it)
    store: str  # "sqlite" or "postgresql" (V2V_POSTGRES_DSN; the DSN itself is not kept)
    hospitals: int
    gmp_sites: int
    in_house: int
    services: list[ServiceRecord] = field(default_factory=list)
    version: int = RECORD_VERSION

    @property
    def consortium(self) -> Consortium:
        return Consortium.sized(self.hospitals, self.gmp_sites, self.in_house)

    def service(self, context: str, site_id: str) -> ServiceRecord:
        name = System.name(context, site_id)
        for record in self.services:
            if record.name == name:
                return record
        raise UpError(f"{UP_FILE} records no service {name}")

    def alive(self) -> list[ServiceRecord]:
        return [record for record in self.services if record.alive]

    def dead(self) -> list[ServiceRecord]:
        return [record for record in self.services if not record.alive]

    # -------------------------------------------------------- file

    @staticmethod
    def path(data_dir: Path) -> Path:
        return data_dir / UP_FILE

    @classmethod
    def load(cls, data_dir: Path) -> UpRecord | None:
        path = cls.path(data_dir)
        if not path.is_file():
            return None
        try:
            document = json.loads(path.read_text())
            services = [ServiceRecord(**each) for each in document.pop("services")]
            return cls(**document, services=services)
        except (ValueError, TypeError, KeyError) as error:
            raise UpError(f"{path} is not a record `up` wrote ({error}); remove it") from None

    def save(self, data_dir: Path) -> None:
        path = self.path(data_dir)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(path)

    @classmethod
    def remove(cls, data_dir: Path) -> None:
        cls.path(data_dir).unlink(missing_ok=True)


def running(data_dir: Path) -> UpRecord | None:
    """The record of a consortium `up` started here whose services all still run."""
    record = UpRecord.load(data_dir)
    if record is None or record.dead():
        return None
    return record


# ---------------------------------------------------------------- ports


def load_ports(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Service name -> (gRPC port, HTTP port) of the last `up` in this data directory."""
    path = data_dir / PORTS_FILE
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text())
        return {name: (int(pair[0]), int(pair[1])) for name, pair in document.items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        return {}


def save_ports(data_dir: Path, processes: Iterable[ServiceProcess]) -> None:
    ports = {p.name: [p.grpc_port, p.http_port] for p in processes}
    (data_dir / PORTS_FILE).write_text(json.dumps(ports, indent=2) + "\n")


def _hold(port: int) -> socket.socket | None:
    """A socket bound to 127.0.0.1:`port` (SO_REUSEADDR, as the services' servers bind), or
    None when the port is taken."""
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        probe.close()
        return None
    return probe


def choose_ports(
    names: list[str], preferred: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """(gRPC, HTTP) for each name: its preferred pair when both ports are free, else new free
    ones (never one of the pairs kept: those are held while the new ones are chosen)."""
    held: list[socket.socket] = []
    chosen: dict[str, tuple[int, int]] = {}
    try:
        for name in names:
            pair = preferred.get(name)
            if pair is None or pair[0] == pair[1]:
                continue
            probes = [_hold(port) for port in pair]
            held += [probe for probe in probes if probe is not None]
            if all(probe is not None for probe in probes):
                chosen[name] = pair
        fresh = iter(free_ports(2 * (len(names) - len(chosen))))
        for name in names:
            if name not in chosen:
                chosen[name] = (next(fresh), next(fresh))
        return chosen
    finally:
        for probe in held:
            probe.close()


@dataclass
class UpSystem(System):
    """A `System` whose services take the ports they had the last time (when still free)."""

    preferred_ports: dict[str, tuple[int, int]] = field(default_factory=dict)

    def _take_ports(self, processes: list[ServiceProcess]) -> None:  # type: ignore[override]
        ports = choose_ports([p.name for p in processes], self.preferred_ports)
        for process in processes:
            process.grpc_port, process.http_port = ports[process.name]


def attach(record: UpRecord, stores: Stores) -> System:
    """The running consortium as a `System` (settings, stores, ports) without processes of
    its own: for the simulator's clients and the set-up steps that call a service."""
    data_dir = Path(record.data_dir)
    if record.store == "postgresql" and not stores.postgres_dsn:
        raise UpError(
            "the consortium in this data directory runs on PostgreSQL: set V2V_POSTGRES_DSN"
            " as when it was started"
        )
    system = System(
        record.consortium, data_dir / "pki", stores, record.kafka_bootstrap, data_dir / "logs"
    )
    system.define_all()
    for process in system.services.values():
        service = next((s for s in record.services if s.name == process.name), None)
        if service is None:
            raise UpError(f"{UP_FILE} records no service {process.name}")
        process.grpc_port, process.http_port = service.grpc_port, service.http_port
    return system


# ---------------------------------------------------------------- stopping


@dataclass
class Stopped:
    stopped: list[str] = field(default_factory=list)  # exited on SIGTERM
    killed: list[str] = field(default_factory=list)  # needed SIGKILL
    gone: list[str] = field(default_factory=list)  # were not running any more


def stop_services(records: list[ServiceRecord], grace_s: float = STOP_GRACE_S) -> Stopped:
    """SIGTERM to every recorded service that still runs (all at once), wait up to `grace_s`,
    then SIGKILL to the process group of those still running."""
    outcome = Stopped()
    asked = []
    for record in records:
        if not record.alive:
            outcome.gone.append(record.name)
            continue
        try:
            os.kill(record.pid, signal.SIGTERM)
            asked.append(record)
        except ProcessLookupError:
            outcome.gone.append(record.name)
    deadline = time.monotonic() + grace_s
    waiting = list(asked)
    while waiting and time.monotonic() < deadline:
        time.sleep(POLL_S)
        waiting = [record for record in waiting if record.alive]
    for record in waiting:
        _kill(record)
        outcome.killed.append(record.name)
    outcome.stopped = [r.name for r in asked if r.name not in outcome.killed]
    kill_deadline = time.monotonic() + 10.0
    while any(r.alive for r in waiting) and time.monotonic() < kill_deadline:
        time.sleep(POLL_S)
    return outcome


def _kill(record: ServiceRecord) -> None:
    try:
        if os.getpgid(record.pid) == record.pid:  # its own session and group (ServiceProcess)
            os.killpg(record.pid, signal.SIGKILL)
        else:
            os.kill(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
