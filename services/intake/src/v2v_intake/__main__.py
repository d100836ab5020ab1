"""`python -m v2v_intake`: gRPC + HTTP + the outbox relay, stopped cleanly by SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import threading

from v2v_intake.bootstrap import IntakeService, bootstrap
from v2v_intake.relay_spec import RELAY_SPEC
from v2v_intake.settings import IntakeSettings
from v2v_platform import telemetry
from v2v_platform.auth.tls import SIGNING_KEY_FILE, SITES_DIR
from v2v_platform.config import load_or_exit
from v2v_platform.relay.process import RelayRuntime, RelaySettings, build_relay
from v2v_platform.service_main import HttpServer, stop_on_signals

log = logging.getLogger("v2v.intake")


def relay_for(settings: IntakeSettings) -> RelayRuntime | None:
    if not settings.kafka_bootstrap:
        log.warning("V2V_KAFKA_BOOTSTRAP is not set: the outbox relay is not started")
        return None
    relay_settings = RelaySettings(
        context="intake",
        site_id=settings.site_id,
        signing_key_file=settings.pki_dir / SITES_DIR / settings.site_id / SIGNING_KEY_FILE,
        postgres_dsn=settings.postgres_dsn,
        sqlite_path=settings.sqlite_path,
        kafka_bootstrap=settings.kafka_bootstrap,
    )
    return build_relay(RELAY_SPEC, relay_settings)


def serve(service: IntakeService, stop: threading.Event) -> None:
    settings = service.settings
    grpc_server = service.serve_grpc()
    http = HttpServer(service.http, settings.http_host, settings.http_port, "intake-http")
    http.start()
    relay = relay_for(settings)
    relay_thread = None
    if relay is not None:
        relay_thread = threading.Thread(target=relay.relay.run, args=(stop,), name="intake-relay")
        relay_thread.start()
    log.info(
        "intake for %s: gRPC port %d, HTTP port %d",
        settings.site_id,
        grpc_server.port,
        settings.http_port,
    )
    stop.wait()
    http.stop()
    grpc_server.stop()
    if relay is not None and relay_thread is not None:
        relay_thread.join(timeout=10)
        relay.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    stop = stop_on_signals(log)
    settings = load_or_exit(IntakeSettings)
    telemetry.setup_tracing("v2v-intake", settings.span_exporter)
    service = bootstrap(settings)
    try:
        serve(service, stop)
    finally:
        service.close()


if __name__ == "__main__":
    main()
