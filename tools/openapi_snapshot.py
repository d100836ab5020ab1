"""Write or check the OpenAPI snapshots of the services' HTTP APIs (contracts/openapi/*.json).

Usage: python tools/openapi_snapshot.py --write | --check
`--check` (run by the test suite) fails when an HTTP API changed without its snapshot: the
snapshot diff is how an API change is reviewed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from v2v_infusion.adapters.http_api import create_http_app as infusion_http
from v2v_intake.adapters.http_api import create_http_app as intake_http
from v2v_logistics.adapters.courier_tokens import sqlite_tokens
from v2v_logistics.adapters.http_api import create_http_app as logistics_http
from v2v_manufacturing.adapters.http_api import create_http_app as manufacturing_http
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.http_api import SiteTokenVerifier
from v2v_projection.adapters.http_api import create_http_app as projection_http
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.queries import ChainQueries
from v2v_projection.store import SqliteProjectionStore
from v2v_release.adapters.http_api import create_http_app as release_http
from v2v_testkit.infusion import build_app as build_infusion
from v2v_testkit.intake import build_intake
from v2v_testkit.logistics import build_app as build_logistics
from v2v_testkit.manufacturing import build_app as build_manufacturing
from v2v_testkit.release import build_app as build_release

SNAPSHOTS = Path(__file__).resolve().parent.parent / "contracts" / "openapi"


def _specs(pki: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "intake": lambda: intake_http(
            build_intake().app, SiteTokenVerifier(pki / "ca.crt")
        ).openapi(),
        "manufacturing": lambda: manufacturing_http(build_manufacturing(), pki).openapi(),
        "logistics": lambda: logistics_http(
            build_logistics(), SiteTokenVerifier(pki / "ca.crt"), sqlite_tokens(":memory:")
        ).openapi(),
        "release": lambda: release_http(
            build_release(), SiteTokenVerifier(pki / "ca.crt")
        ).openapi(),
        "projection": lambda: projection_http(
            ChainQueries(ChainProjection(SqliteProjectionStore(Path(":memory:")))),
            SiteTokenVerifier(pki / "ca.crt"),
        ).openapi(),
        "infusion": lambda: infusion_http(
            build_infusion(), SiteTokenVerifier(pki / "ca.crt")
        ).openapi(),
    }


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def current() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as directory:
        pki = Path(directory)
        init_pki(pki, [parse_site_spec("HOSP-A:collection")])
        return {name: render(build()) for name, build in _specs(pki).items()}


def check() -> list[str]:
    """Names of the services whose snapshot is missing or differs from the live API."""
    return [
        name
        for name, text in current().items()
        if not (SNAPSHOTS / f"{name}.json").is_file()
        or (SNAPSHOTS / f"{name}.json").read_text() != text
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    if options.write:
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        for name, text in current().items():
            (SNAPSHOTS / f"{name}.json").write_text(text)
            print(f"wrote contracts/openapi/{name}.json")
    elif options.check:
        stale = check()
        if stale:
            print(f"OpenAPI snapshots out of date: {', '.join(stale)}; run make openapi")
            sys.exit(1)
        print("OpenAPI snapshots up to date")
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
