"""`python -m v2v_intake`: gRPC + HTTP + the outbox relay; intake consumes no other context's
events, so it starts nothing more. Settings come from V2V_* variables (a missing or bad one
stops the process naming it, exit status 2); SIGTERM or SIGINT stops everything cleanly.
"""

from __future__ import annotations

from v2v_intake.bootstrap import bootstrap
from v2v_intake.settings import IntakeSettings
from v2v_platform import service_main


def main() -> None:
    service_main.serve("intake", IntakeSettings, bootstrap, lambda _service: None)


if __name__ == "__main__":
    main()
