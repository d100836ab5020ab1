"""Extra release specification versions, from the JSON file named by V2V_RELEASE_SPECS_FILE.

The built-in v1 (DESIGN.md section 2, in force from 2020-01-01T00:00Z) is always there; the
file adds versions. A batch is judged against the latest version whose `effective_from` is at
or before the batch's start. Format:

    {
      "versions": [
        {
          "version": "v2",
          "effective_from": "2026-01-01T00:00:00Z",
          "criteria": [
            {"test": "viability", "phase": "pre-release", "minimum": 75, "unit": "%"},
            {"test": "endotoxin", "phase": "pre-release", "maximum": 0.5, "unit": "EU/mL"},
            {"test": "mycoplasma", "phase": "pre-release", "expected": "negative",
             "method": "PCR"},
            {"test": "sterility", "phase": "post-release", "expected": "negative"},
            {"test": "rcl", "phase": "post-release", "expected": "absent"}
          ]
        }
      ]
    }

Each criterion has a `test` code, a `phase` ("pre-release" or "post-release") and exactly one
of `minimum` / `maximum` (numeric; `unit` required: results must be reported in it) or
`expected` ("negative": judged negative/positive; "absent": absent/detected; no `unit`).
`method` is optional: when given, only results by that method are accepted. Versions must be
unique (v1 included), take effect at distinct times (with a time zone), and list each test
once. A file that breaks any of this stops the service at start-up, naming the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from v2v_release.domain.specification import (
    Criterion,
    Phase,
    ReleaseSpecification,
    SpecificationCatalog,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CriterionEntry(_Strict):
    test: str
    phase: Literal["pre-release", "post-release"]
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    expected: Literal["negative", "absent"] | None = None
    method: str = ""

    def criterion(self) -> Criterion:
        return Criterion(
            self.test,
            Phase(self.phase),
            self.unit,
            self.minimum,
            self.maximum,
            self.expected or "",
            self.method,
        )


class VersionEntry(_Strict):
    version: str
    effective_from: AwareDatetime
    criteria: list[CriterionEntry]

    def specification(self) -> ReleaseSpecification:
        criteria = tuple(entry.criterion() for entry in self.criteria)
        return ReleaseSpecification(self.version, self.effective_from, criteria)


class SpecsFile(_Strict):
    versions: list[VersionEntry]


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or '(file)'}: {e['msg']}"
        for e in error.errors()
    )


def load_catalog(path: Path | None) -> SpecificationCatalog:
    """The catalog of v1 plus the file's versions; ValueError naming what is wrong."""
    if path is None:
        return SpecificationCatalog()
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        parsed = SpecsFile.model_validate_json(text)
    except ValidationError as error:
        raise ValueError(f"{path} is not a valid specifications file: {_problems(error)}") from None
    try:
        return SpecificationCatalog(v.specification() for v in parsed.versions)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
