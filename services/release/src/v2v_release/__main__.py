"""`python -m v2v_release`: gRPC + HTTP + outbox relay + the consumer of manufacturing's and
intake's events (batch facts, treating sites).

Settings come from V2V_* variables (a missing or bad one, e.g. an invalid
V2V_RELEASE_SPECS_FILE, stops the process naming it, exit status 2); SIGTERM or SIGINT stops
everything cleanly. Signers are added with `v2v signer add --role qp|physician`.
"""

from __future__ import annotations

from v2v_platform import service_main
from v2v_release.bootstrap import ReleaseService, bootstrap
from v2v_release.settings import ReleaseSettings


def main() -> None:
    service_main.serve("release", ReleaseSettings, bootstrap, ReleaseService.start_facts_consumer)


if __name__ == "__main__":
    main()
