"""The whole system as separate processes: per GMP site a manufacturing and a release
service, per hospital an intake and an infusion service, one logistics service (couriers'
site) and one projection core (auditor's site). Started in dependency order (intake calls its
GMP site's manufacturing service); each is ready when its gRPC health check serves, its HTTP
port listens (opened after its relay and consumers) and its consumer group holds every
partition it subscribes to."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from v2v_platform.din_allocation import IssuingService
from v2v_platform.processes import ServiceDied, ServiceProcess, free_ports
from v2v_simulator.broker import prepare_topics
from v2v_simulator.consortium import Consortium, GmpSite, Hospital
from v2v_simulator.consumers import CONSUMING, group_prefix, wait_assigned
from v2v_simulator.stores import Stores

log = logging.getLogger("v2v.simulator")
HEALTH_TIMEOUT_S = 120.0
CONSUMERS_TIMEOUT_S = 30.0


class StartupFailed(RuntimeError):
    """The system could not be started (a service never became ready)."""


CHECKPOINT_INTERVAL_S = "5"
"""A simulated consortium runs for seconds, not hours: its relays checkpoint every 5 s (the
service default is 60 s), so the audit at the end verifies the history against checkpoints."""


def services_of(consortium: Consortium) -> list[tuple[str, str]]:
    """(context, site id) of every service, in start order (intake last: it calls its GMP
    site's manufacturing service)."""
    return [
        *((c, g.site_id) for g in consortium.gmp_sites for c in ("manufacturing", "release")),
        ("logistics", consortium.logistics_site),
        *(("infusion", h.site_id) for h in consortium.hospitals),
        ("projection", consortium.auditor_site),
        *(("intake", h.site_id) for h in consortium.hospitals),
    ]


DIN_ISSUING = ("intake", "manufacturing")
"""The services that number DINs under their site's FIN (V2V_FIN), each from its own block."""


def fin_of(consortium: Consortium, site_id: str) -> str:
    sites: list[Hospital | GmpSite] = [*consortium.hospitals, *consortium.gmp_sites]
    return next(site.fin for site in sites if site.site_id == site_id)


def din_issuers(consortium: Consortium) -> list[tuple[str, IssuingService]]:
    """(FIN, issuer) of every service that numbers DINs, as `define_all` gives them V2V_FIN:
    what the PKI directory's DIN allocations must declare (`setup.ensure_pki`)."""
    return [
        (fin_of(consortium, site_id), IssuingService(site_id, context))
        for context, site_id in services_of(consortium)
        if context in DIN_ISSUING
    ]


def service_names(consortium: Consortium) -> list[str]:
    return [System.name(context, site_id) for context, site_id in services_of(consortium)]


@dataclass
class System:
    consortium: Consortium
    pki: Path
    stores: Stores
    kafka_bootstrap: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    # ------------------------------------------------------------ naming

    @staticmethod
    def name(context: str, site_id: str) -> str:
        return f"{context}-{site_id}"

    def service(self, context: str, site_id: str) -> ServiceProcess:
        return self.services[self.name(context, site_id)]

    def grpc_target(self, context: str, site_id: str) -> str:
        return self.service(context, site_id).grpc_target

    def http_base(self, context: str, site_id: str) -> str:
        return self.service(context, site_id).http_base

    # ------------------------------------------------------------ definitions

    def _define(self, context: str, site_id: str, **settings: str) -> ServiceProcess:
        name = self.name(context, site_id)
        env = {
            "V2V_SITE_ID": site_id,
            "V2V_PKI_DIR": str(self.pki),
            "V2V_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "V2V_CHECKPOINT_INTERVAL_S": CHECKPOINT_INTERVAL_S,
            **self.stores.env_for(name),
            **self.extra_env,
            **settings,
        }
        process = ServiceProcess(name, f"v2v_{context}", env, self.log_dir / f"{name}.log")
        self.services[name] = process
        return process

    def define_all(self) -> None:
        """Every service of the consortium (settings and stores), not started yet."""
        for context, site_id in services_of(self.consortium):
            settings: dict[str, str] = {}
            if context in DIN_ISSUING:  # each from its block declared in the PKI directory
                settings["V2V_FIN"] = fin_of(self.consortium, site_id)
            self._define(context, site_id, **settings)

    # ------------------------------------------------------------ lifecycle

    def start(self, announce: Callable[[str], None] = lambda _: None) -> None:
        """Start every defined service; return once each one serves and consumes."""
        if not self.services:
            self.define_all()
        prepare_topics(self.kafka_bootstrap)
        first = [p for p in self.services.values() if p.module != "v2v_intake"]
        intakes = [p for p in self.services.values() if p.module == "v2v_intake"]
        for batch in (first, intakes):
            self._take_ports(batch)
            for process in batch:
                if process.module == "v2v_intake":
                    gmp = self.consortium.hospital(process.env["V2V_SITE_ID"]).gmp.site_id
                    process.env["V2V_MANUFACTURING_TARGET"] = self.grpc_target("manufacturing", gmp)
                process.start()
                announce(f"started {process.name} (gRPC {process.grpc_port}, log {process.log})")
            self.wait_healthy(batch)
        self.wait_consuming(list(self.services.values()), announce)

    @staticmethod
    def _take_ports(processes: list[ServiceProcess]) -> None:
        """Ports chosen right before the start: the shorter the time between the choice and
        the bind, the smaller the chance another program on this machine takes them."""
        ports = iter(free_ports(2 * len(processes)))
        for process in processes:
            process.grpc_port, process.http_port = next(ports), next(ports)

    def consumer_groups(self, processes: Iterable[ServiceProcess]) -> dict[str, ServiceProcess]:
        """The consumer group prefix of each process that consumes."""
        groups = {}
        for process in processes:
            context = process.module.removeprefix("v2v_")
            if context in CONSUMING:
                groups[group_prefix(context, process.env["V2V_SITE_ID"])] = process
        return groups

    def wait_consuming(
        self, processes: list[ServiceProcess], announce: Callable[[str], None] = lambda _: None
    ) -> None:
        """Until each process's consumer group holds all its partitions. A service whose
        consumer joined with no partitions (a kafka-python race, see `consumers`) is
        restarted once; StartupFailed if that does not help."""
        groups = self.consumer_groups(processes)
        stuck = wait_assigned(self.kafka_bootstrap, groups, CONSUMERS_TIMEOUT_S)
        for prefix, problem in stuck.items():
            message = f"restarting {groups[prefix].name}: its consumer is not consuming ({problem})"
            log.warning(message)
            announce(message)
            groups[prefix].stop()
            groups[prefix].start()
        if stuck:
            self.wait_healthy([groups[prefix] for prefix in stuck])
            still = wait_assigned(self.kafka_bootstrap, stuck, CONSUMERS_TIMEOUT_S)
            if still:
                raise StartupFailed(f"consumers not consuming: {'; '.join(still.values())}")

    def wait_healthy(
        self, processes: Iterable[ServiceProcess], timeout_s: float = HEALTH_TIMEOUT_S
    ) -> None:
        waiting = list(processes)
        deadline = time.monotonic() + timeout_s
        while waiting:
            waiting = [p for p in waiting if not p.healthy(self.pki, self.consortium.auditor_site)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(p.name for p in waiting)
                raise StartupFailed(f"not serving after {timeout_s:g}s: {names}")
            time.sleep(0.2)

    def restart(self, context: str, site_id: str) -> None:
        """Stop one service and start it again on the same ports and settings."""
        process = self.service(context, site_id)
        process.stop()
        process.start()
        self.wait_healthy([process])
        self.wait_consuming([process])

    def check_alive(self) -> None:
        for process in self.services.values():
            process.check_alive()

    def deaths(self) -> list[str]:
        """What each service that exited on its own left at the end of its log."""
        found = []
        for process in self.services.values():
            try:
                process.check_alive()
            except ServiceDied as died:
                found.append(str(died))
        return found

    def stop(self) -> dict[str, int | None]:
        """Stop every service (all asked at once, then waited for); exit statuses by name."""
        for process in self.services.values():
            process.terminate()
        return {process.name: process.stop() for process in self.services.values()}
