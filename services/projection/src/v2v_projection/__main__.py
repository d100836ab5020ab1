"""`python -m v2v_projection`: the projection core (Kafka consumer of every context topic,
gRPC ChainQueryService, HTTP JSON under /v1, live alerts), until SIGTERM/SIGINT.

    python -m v2v_projection                 # serve (default)
    python -m v2v_projection serve --rebuild # forget the stored state, re-read from offset 0
    python -m v2v_projection rebuild         # only forget it (the next start re-reads and
                                             # verifies every record again)

Settings come from V2V_* variables (a missing one stops the process naming it).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from v2v_platform import telemetry
from v2v_platform.config import load_or_exit
from v2v_projection.bootstrap import bootstrap, open_replica_store
from v2v_projection.settings import ProjectionSettings
from v2v_projection.writer import use_short_switch_interval

log = logging.getLogger("v2v.projection")
cli = typer.Typer(add_completion=False, no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def main(context: typer.Context) -> None:
    """Serve the projection core (when no command is given)."""
    if context.invoked_subcommand is None:
        serve(rebuild=False)


@cli.command("serve")
def serve(
    rebuild: Annotated[bool, typer.Option(help="re-read every topic from offset zero")] = False,
) -> None:
    """Consumer + gRPC + HTTP + live alerts, until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_or_exit(ProjectionSettings)
    telemetry.setup_tracing(f"v2v-projection-{settings.site_id}", settings.span_exporter)
    use_short_switch_interval()
    service = bootstrap(settings, rebuild=rebuild)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = uvicorn.Server(
        uvicorn.Config(service.http_app, host=settings.http_host, port=settings.http_port)
    )
    http = threading.Thread(target=server.run, name="projection-http", daemon=True)
    try:
        running = service.start_grpc()
        service.start_consumer()
        service.start_alert_hub()
        http.start()
        log.info(
            "projection %s (replica %s, consumer group %s): gRPC on port %d, HTTP on %s:%d",
            settings.site_id,
            settings.projection_replica or "0",
            settings.group_id,
            running.port,
            settings.http_host,
            settings.http_port,
        )
        stop.wait()
    finally:
        service.hub.close()  # ends every console alert stream, so uvicorn need not wait on them
        server.should_exit = True
        http.join(timeout=10)
        service.stop()
        log.info("stopped")


@cli.command("rebuild")
def rebuild_store() -> None:
    """Clear this replica's stored envelopes and offsets (V2V_PROJECTION_REPLICA): its next
    start re-reads every topic."""
    settings = load_or_exit(ProjectionSettings)
    store = open_replica_store(settings)
    try:
        store.clear()
    finally:
        store.close()
    print("projection store cleared: the next start consumes every topic from offset zero")


if __name__ == "__main__":
    cli()
