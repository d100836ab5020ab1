"""The serve loop of a service process (`python -m v2v_<service>`), written once.

`serve(name, settings_class, bootstrap, start)` reads the V2V_* settings (a missing or bad one
stops the process naming it, exit status 2), installs tracing, wires the service, starts its
gRPC server, outbox relay and whatever `start(service)` starts (its consumers), serves HTTP
until SIGTERM or SIGINT, then stops everything cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol, TypeVar

import uvicorn

from v2v_platform import telemetry
from v2v_platform.config import SiteServiceSettings, load_or_exit
from v2v_platform.grpc_service import RunningServer


class Service(Protocol):
    """What the serve loop needs of a wired service (see `service_runtime.RuntimeService`)."""

    @property
    def http_app(self) -> Any: ...

    def start_grpc(self) -> RunningServer: ...

    def start_relay(self) -> object: ...

    def stop(self) -> None: ...


SettingsT = TypeVar("SettingsT", bound=SiteServiceSettings)
ServiceT = TypeVar("ServiceT", bound=Service)


def stop_on_signals(log: logging.Logger) -> threading.Event:
    """An event that SIGTERM or SIGINT sets (and logs), for the main thread to wait on."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


class HttpServer:
    """uvicorn serving `app` in a daemon thread named `name`."""

    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port))
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=timeout_s)


def serve(
    name: str,
    settings_class: type[SettingsT],
    bootstrap: Callable[[SettingsT], ServiceT],
    start: Callable[[ServiceT], object],
    *,
    note: str = "",
) -> None:
    """Run service `name` until SIGTERM/SIGINT; `note` ends the "listening" log line."""
    log = logging.getLogger(f"v2v.{name}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_or_exit(settings_class)
    telemetry.setup_tracing(f"v2v-{name}-{settings.site_id}", settings.span_exporter)
    service = bootstrap(settings)
    stop = stop_on_signals(log)
    http = HttpServer(service.http_app, settings.http_host, settings.http_port, f"{name}-http")
    try:
        running = service.start_grpc()
        service.start_relay()
        start(service)
        http.start()
        log.info(
            "%s %s: gRPC on port %d, HTTP on %s:%d%s",
            name,
            settings.site_id,
            running.port,
            settings.http_host,
            settings.http_port,
            note,
        )
        stop.wait()
    finally:
        http.stop()
        service.stop()
        log.info("stopped")
