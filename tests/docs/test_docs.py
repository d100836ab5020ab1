"""The documentation stays true to the tree: every link in README.md, CONTRIBUTING.md and
docs/ points to a file inside the repository, and every repository path the docs name in
backticks exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")
TOP = "libs|services|docs|contracts|proto|infra|tools|deploy|e2e|bench"
PATH = re.compile(rf"`((?:{TOP})/[^`\s*<>]+)`")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_link_resolves_inside_the_repository(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            broken.append(f"{target}: links outside the repository")
            continue
        resolved = (doc.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_repository_path_named_exists(doc: Path) -> None:
    missing = [p for p in PATH.findall(doc.read_text()) if not (ROOT / p.rstrip("/.,")).exists()]
    assert missing == []


def test_the_docs_the_readme_promises_exist() -> None:
    assert (ROOT / "docs" / "architecture.md").is_file()
    decisions = sorted((ROOT / "docs" / "decisions").glob("0*.md"))
    assert len(decisions) >= 6
    index = (ROOT / "docs" / "decisions" / "README.md").read_text()
    assert all(d.name in index for d in decisions)


def test_pre_commit_runs_ruff_and_mypy() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]
    assert any("ruff check" in e for e in entries)
    assert any("ruff format" in e for e in entries)
    assert any("mypy" in e for e in entries)
