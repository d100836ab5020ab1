"""`python -m v2v_release`: gRPC + HTTP + outbox relay + the consumer of manufacturing's and
intake's events (batch facts, treating sites).

Settings come from V2V_* variables (a missing or bad one, e.g. an invalid
V2V_RELEASE_SPECS_FILE, stops the process naming it, exit status 2); SIGTERM or SIGINT stops
everything cleanly. Signers are added with `v2v signer add --role qp|physician`.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from v2v_platform import telemetry
from v2v_platform.config import load_or_exit
from v2v_release.bootstrap import bootstrap
from v2v_release.settings import ReleaseSettings

log = logging.getLogger("v2v.release")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_or_exit(ReleaseSettings)
    telemetry.setup_tracing(f"v2v-release-{settings.site_id}", settings.span_exporter)
    service = bootstrap(settings)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = uvicorn.Server(
        uvicorn.Config(service.http_app, host=settings.http_host, port=settings.http_port)
    )
    http = threading.Thread(target=server.run, name="release-http", daemon=True)
    try:
        running = service.start_grpc()
        service.start_relay()
        service.start_facts_consumer()
        http.start()
        log.info(
            "release %s: gRPC on port %d, HTTP on %s:%d",
            settings.site_id,
            running.port,
            settings.http_host,
            settings.http_port,
        )
        stop.wait()
    finally:
        server.should_exit = True
        http.join(timeout=10)
        service.stop()
        log.info("stopped")


if __name__ == "__main__":
    main()
