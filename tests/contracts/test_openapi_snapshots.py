"""The services' HTTP APIs match their reviewed OpenAPI snapshots in contracts/openapi/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_snapshots_match_the_live_apis() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "openapi_snapshot.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snapshots_publish_problem_json_errors_and_bearer_auth() -> None:
    for name in ("intake", "manufacturing", "logistics", "release", "infusion", "projection"):
        spec = json.loads((ROOT / "contracts" / "openapi" / f"{name}.json").read_text())
        assert spec["openapi"].startswith("3.")
        assert "HTTPBearer" in spec["components"]["securitySchemes"]
        # /v1: the JSON API; /fhir (the projection): HL7 FHIR R5, errors as OperationOutcome
        assert all(path.startswith(("/v1/", "/fhir/")) for path in spec["paths"]), name
