"""`python -m v2v_manufacturing`: gRPC + HTTP + outbox relay + facts consumer (intake's events).

Settings come from V2V_* variables (a missing one stops the process naming it); SIGTERM or
SIGINT stops everything cleanly.
"""

from __future__ import annotations

from v2v_manufacturing.bootstrap import ManufacturingService, bootstrap
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform import service_main


def main() -> None:
    service_main.serve(
        "manufacturing",
        ManufacturingSettings,
        bootstrap,
        ManufacturingService.start_facts_consumer,
    )


if __name__ == "__main__":
    main()
