"""Specifications as versioned data: v1 built in, how results are judged, extra versions from
V2V_RELEASE_SPECS_FILE (validated at start-up), and the version in force at a batch's start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from v2v_platform.config import load_or_exit
from v2v_platform.errors import InvalidInput, Refused
from v2v_release.adapters.spec_file import load_catalog
from v2v_release.domain.specification import SPEC_V1, SpecificationCatalog
from v2v_release.settings import ReleaseSettings

V2 = {
    "version": "v2",
    "effective_from": "2026-01-01T00:00:00Z",
    "criteria": [
        {"test": "viability", "phase": "pre-release", "minimum": 75, "unit": "%"},
        {"test": "mycoplasma", "phase": "pre-release", "expected": "negative", "method": "PCR"},
        {"test": "sterility", "phase": "post-release", "expected": "negative"},
    ],
}


def specs_file(tmp_path: Path, *versions: dict[str, Any]) -> Path:
    path = tmp_path / "specs.json"
    path.write_text(json.dumps({"versions": list(versions)}))
    return path


def test_v1_is_built_in_as_design_says() -> None:
    shown = {c.test: (c.phase.value, c.text) for c in SPEC_V1.criteria}
    assert shown == {
        "viability": ("pre-release", ">= 70 %"),
        "cd3": ("pre-release", ">= 70 %"),
        "car": ("pre-release", ">= 20 %"),
        "dose": ("pre-release", ">= 0.5 10^6 CAR+ cells/kg"),
        "endotoxin": ("pre-release", "<= 0.5 EU/mL"),
        "mycoplasma": ("pre-release", "negative by PCR"),
        "sterility": ("post-release", "negative"),
        "vcn": ("post-release", "<= 5 copies/transduced cell"),
        "rcl": ("post-release", "absent"),
    }
    assert SPEC_V1.effective_from == datetime(2020, 1, 1, tzinfo=UTC)


def criterion(test: str) -> Any:
    return next(c for c in SPEC_V1.criteria if c.test == test)


@pytest.mark.parametrize(
    ("test", "value", "unit", "method", "passed"),
    [
        ("viability", "70", "%", "", True),
        ("viability", "69.9", "%", "flow", False),
        ("endotoxin", "0.5", "EU/mL", "", True),
        ("endotoxin", "0.51", "EU/mL", "", False),
        ("vcn", " 5 ", "copies/transduced cell", "", True),
        ("mycoplasma", "NEGATIVE", "", "pcr", True),
        ("mycoplasma", "Positive", "", "PCR", False),
        ("rcl", "absent", "", "", True),
        ("rcl", "Detected", "", "", False),
    ],
)
def test_results_are_judged_by_the_service(
    test: str, value: str, unit: str, method: str, passed: bool
) -> None:
    assert criterion(test).judge(value, unit, method).passed is passed


@pytest.mark.parametrize(
    ("test", "value", "unit", "method", "problem"),
    [
        ("viability", "82", "percent", "", "reported in '%'"),
        ("dose", "1.2", "", "", r"reported in '10\^6 CAR\+ cells/kg'"),
        ("viability", "high", "%", "", "needs a number"),
        ("viability", "nan", "%", "", "finite number"),
        ("sterility", "maybe", "", "", "negative or positive"),
        ("rcl", "negative", "", "", "absent or detected"),
        ("sterility", "negative", "%", "", "without a unit"),
        ("mycoplasma", "negative", "", "culture", "must be tested by PCR"),
        ("mycoplasma", "negative", "", "", "must be tested by PCR"),
    ],
)
def test_malformed_results_are_invalid_naming_the_problem(
    test: str, value: str, unit: str, method: str, problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        criterion(test).judge(value, unit, method)


def test_the_version_in_force_at_a_moment_is_the_latest_effective_one(tmp_path: Path) -> None:
    catalog = load_catalog(specs_file(tmp_path, V2))
    assert [s.version for s in catalog.newest_first] == ["v2", "v1"]
    assert catalog.in_force_at(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)).version == "v1"
    assert catalog.in_force_at(datetime(2026, 1, 1, tzinfo=UTC)).version == "v2"
    with pytest.raises(Refused, match="no release specification was in force"):
        catalog.in_force_at(datetime(2019, 12, 31, tzinfo=UTC))
    v2 = catalog.in_force_at(datetime(2026, 5, 1, tzinfo=UTC))
    assert v2.tests == ["viability", "mycoplasma", "sterility"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"version": "v1"}, "versions must be unique"),
        ({"effective_from": "2020-01-01T00:00:00Z"}, "same time"),
        ({"effective_from": "2026-01-01T00:00:00"}, "timezone"),
        ({"criteria": []}, "has no criteria"),
        ({"criteria": [{"test": "vcn", "phase": "post-release", "maximum": 5}]}, "needs its unit"),
        (
            {"criteria": [{"test": "x", "phase": "pre-release", "minimum": 1, "maximum": 2}]},
            "exactly one of",
        ),
        ({"criteria": [{"test": "rcl", "phase": "later", "expected": "absent"}]}, "phase"),
        ({"criteria": [{"test": "rcl", "phase": "pre-release", "expected": "gone"}]}, "expected"),
        (
            {"criteria": [V2["criteria"][0], V2["criteria"][0]]},
            "lists a test twice",
        ),
        ({"colour": "blue"}, "Extra inputs"),
    ],
)
def test_a_bad_specs_file_is_refused_naming_the_problem(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        load_catalog(specs_file(tmp_path, {**V2, **change}))


def test_unreadable_or_malformed_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_catalog(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid specifications file"):
        load_catalog(broken)


def test_settings_stop_the_service_naming_a_bad_specs_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("V2V_SITE_ID", "QC-1")
    monkeypatch.setenv("V2V_PKI_DIR", str(tmp_path))
    monkeypatch.setenv("V2V_RELEASE_SPECS_FILE", str(specs_file(tmp_path, {**V2, "criteria": []})))
    with pytest.raises(SystemExit) as stopped:
        load_or_exit(ReleaseSettings)
    assert stopped.value.code == 2
    assert "V2V_RELEASE_SPECS_FILE" in capsys.readouterr().err


def test_settings_load_the_extra_versions(tmp_path: Path) -> None:
    settings = ReleaseSettings(
        site_id="QC-1", pki_dir=tmp_path, release_specs_file=specs_file(tmp_path, V2)
    )
    assert [s.version for s in settings.specifications().newest_first] == ["v2", "v1"]
    default = ReleaseSettings(site_id="QC-1", pki_dir=tmp_path)
    assert [s.version for s in default.specifications().newest_first] == ["v1"]
    assert (default.grpc_address, default.http_port) == ("127.0.0.1:50064", 8064)


def test_the_service_process_exits_2_on_a_bad_specs_file(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "V2V_SITE_ID": "QC-1",
        "V2V_PKI_DIR": str(tmp_path),
        "V2V_RELEASE_SPECS_FILE": str(tmp_path / "absent.json"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "v2v_release"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "V2V_RELEASE_SPECS_FILE" in done.stderr and "cannot read" in done.stderr


def test_the_catalog_refuses_duplicate_versions() -> None:
    with pytest.raises(ValueError, match="unique"):
        SpecificationCatalog([SPEC_V1])
