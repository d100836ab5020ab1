"""`python -m v2v_infusion`: gRPC + HTTP + outbox relay + facts consumer (manufacturing,
release and intake events).

Settings come from V2V_* variables (a missing one stops the process naming it); SIGTERM or
SIGINT stops everything cleanly. Physicians who acknowledge alerts are added with
`v2v signer add --site S --user U --name N --role physician`.
"""

from __future__ import annotations

from v2v_infusion.bootstrap import InfusionService, bootstrap
from v2v_infusion.settings import InfusionSettings
from v2v_platform import service_main


def main() -> None:
    service_main.serve(
        "infusion", InfusionSettings, bootstrap, InfusionService.start_facts_consumer
    )


if __name__ == "__main__":
    main()
