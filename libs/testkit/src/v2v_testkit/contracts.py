"""Where the repository's `contracts/` folder (AsyncAPI, golden vectors, OpenAPI snapshots) is.

`V2V_CONTRACTS_DIR` names it; else it is found from the working directory upwards, then from
this package upwards (an editable install in a checkout): the first folder holding
`contracts/asyncapi.yaml`. No `parents[N]` arithmetic: it works from any test's directory.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKER = Path("contracts") / "asyncapi.yaml"


class ContractsNotFound(RuntimeError):
    """No `contracts/` folder was found; set V2V_CONTRACTS_DIR."""


def contracts_dir() -> Path:
    named = os.environ.get("V2V_CONTRACTS_DIR")
    if named:
        return Path(named)
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / MARKER).is_file():
                return folder / "contracts"
    raise ContractsNotFound(
        "no contracts/asyncapi.yaml above the working directory or v2v_testkit;"
        " set V2V_CONTRACTS_DIR to the repository's contracts folder"
    )


def golden_dir(context: str, version: int = 1) -> Path:
    """The golden vectors of `context` ("envelope", "intake", ...) at contract version."""
    return contracts_dir() / "golden" / context / f"v{version}"
