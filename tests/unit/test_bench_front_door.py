"""`make bench`'s front door (bench/run.py), its pure parts: a missing module's row, a failing
module's FAILED row (the others still run, the exit status says so), target marks, and the
comparison with the previous results file. No Kafka, nothing measured."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def front_door() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_front_door_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run = front_door()


def fine(quick: bool = False) -> dict[str, Any]:
    return {"rate": 120.0 if quick else 100.0}


def fine_rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    return [
        ("events/s", f"{result['rate']:,.0f}", ">= 110", result["rate"] >= 110),
        ("  detail", "3.0 / 4.0", "", None),
    ]


def broken(quick: bool = False) -> dict[str, Any]:
    raise RuntimeError("the broker went away\nsecond line")


def loader(modules: dict[str, Any]) -> Any:
    def load(name: str) -> Any:
        if name not in modules:
            raise run.Missing(f"bench/bench_{name}.py")
        return modules[name]

    return load


def test_a_missing_module_says_so_in_its_row() -> None:
    outcome = run.run_module("reads", loader({}), quick=True)
    assert outcome.status == "missing"
    assert outcome.rows == [("reads", "not run: missing (bench/bench_reads.py)", "", None)]


def test_a_module_that_raises_is_a_failed_row_and_the_others_still_run() -> None:
    modules = {
        "relay": SimpleNamespace(measure=broken, rows=fine_rows),
        "reads": SimpleNamespace(measure=fine, rows=fine_rows),
    }
    outcomes = [run.run_module(name, loader(modules), quick=False) for name in modules]
    assert [o.status for o in outcomes] == ["failed", "ok"]
    assert outcomes[0].rows == [("relay", "FAILED: RuntimeError: the broker went away", "", False)]
    assert outcomes[1].rows[0] == ("events/s", "100", ">= 110", False)
    assert any(line.startswith("FAILED: relay") for line in run.closing(outcomes))


def test_a_module_without_measure_and_rows_fails() -> None:
    outcome = run.run_module("reads", loader({"reads": SimpleNamespace()}), quick=False)
    assert outcome.status == "failed"
    assert outcome.rows[0][1].startswith("FAILED: no measure()/rows()")


def test_a_result_that_is_not_json_fails() -> None:
    module = SimpleNamespace(measure=lambda quick: {"when": object()}, rows=lambda r: [])
    outcome = run.run_module("reads", loader({"reads": module}), quick=False)
    assert outcome.status == "failed"
    assert "not JSON serializable" in outcome.rows[0][1]


def test_quick_reaches_the_module_and_two_tuples_are_taken() -> None:
    module = SimpleNamespace(measure=fine, rows=lambda r: [("rate", f"{r['rate']:.0f}")])
    outcome = run.run_module("reads", loader({"reads": module}), quick=True)
    assert outcome.rows == [("rate", "120", "", None)]


def test_a_row_of_another_shape_fails() -> None:
    module = SimpleNamespace(measure=fine, rows=lambda r: [("rate", "1", "", "yes")])
    outcome = run.run_module("reads", loader({"reads": module}), quick=False)
    assert outcome.status == "failed"


@pytest.mark.parametrize(("ok", "text"), [(True, "yes"), (False, "NO"), (None, "")])
def test_target_marks(ok: bool | None, text: str) -> None:
    assert run.mark(ok) == text


@pytest.mark.parametrize(
    ("previous", "current", "moved"),
    [
        ("100", "112", "+12%"),
        ("12,000", "9,000", "-25%"),
        ("3.0 / 4.0", "3.3 / 2.0", "+10% / -50%"),
        ("0.59x", "1.18x", "+100%"),
        ("0", "5", "n/a"),
        ("not run: missing", "100", ""),
        ("1 / 2", "3", ""),
    ],
)
def test_change_against_the_previous_value(previous: str, current: str, moved: str) -> None:
    assert run.change(previous, current) == moved


def test_the_table_shows_previous_and_change_for_figures_in_both() -> None:
    outcome = run.run_module(
        "reads", loader({"reads": SimpleNamespace(measure=fine, rows=fine_rows)}), quick=False
    )
    earlier = {
        "modules": {
            "reads": {"status": "ok", "rows": [["events/s", "80", ">= 110", False]]},
            "gone": {"status": "ok", "rows": [["x", "1", "", None]]},
        }
    }
    text = run.table([outcome], run.previous_values(earlier))
    line = next(line for line in text.splitlines() if line.startswith("events/s"))
    assert line.split()[-4:] == ["110", "NO", "80", "+25%"]
    detail = next(line for line in text.splitlines() if line.startswith("  detail"))
    assert detail.rstrip().endswith("3.0 / 4.0")  # no previous figure: nothing compared


def test_an_older_results_file_gives_no_previous_values() -> None:
    assert run.previous_values({"fold_events_per_s": 537981}) == {}
    assert run.previous_values(None) == {}


def test_main_keeps_the_previous_file_and_exits_non_zero_on_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = {
        "projection": SimpleNamespace(measure=fine, rows=fine_rows),
        "reads": SimpleNamespace(measure=broken, rows=fine_rows),
    }
    monkeypatch.setattr(run, "MODULES", {name: f"bench_{name}" for name in modules})
    monkeypatch.setattr(run, "load", loader(modules))
    out = tmp_path / "latest.json"
    earlier = {"modules": {"projection": {"status": "ok", "rows": [["events/s", "50", "", None]]}}}
    out.write_text(json.dumps(earlier))

    status = run.main(["--out", str(out)])

    assert status == 1
    assert json.loads((tmp_path / "previous.json").read_text()) == earlier
    written = json.loads(out.read_text())
    assert written["modules"]["projection"]["status"] == "ok"
    assert written["modules"]["reads"]["status"] == "failed"
    assert set(written["machine"]) >= {"cpu_model", "cores", "memory_gb", "python", "kernel"}
    assert set(written["git"]) == {"commit", "dirty"}
    assert len(written["load_average_at_start"]) == len(written["load_average_at_end"]) == 3


def test_only_carries_the_other_modules_figures_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = {
        "projection": SimpleNamespace(measure=fine, rows=fine_rows),
        "reads": SimpleNamespace(measure=fine, rows=fine_rows),
    }
    monkeypatch.setattr(run, "MODULES", {name: f"bench_{name}" for name in modules})
    monkeypatch.setattr(run, "load", loader(modules))
    out = tmp_path / "latest.json"
    kept = {"status": "ok", "rows": [["events/s", "50", "", None]], "result": {"rate": 50}}
    out.write_text(json.dumps({"modules": {"projection": kept}}))

    assert run.main(["--out", str(out), "--only", "reads"]) == 0

    written = json.loads(out.read_text())["modules"]
    assert written["projection"] == {**kept, "carried_over": True}
    assert written["reads"]["result"] == {"rate": 100.0}


def test_a_bare_assert_says_where_it_failed() -> None:
    def asserting(quick: bool = False) -> dict[str, Any]:
        raise AssertionError

    module = SimpleNamespace(measure=asserting, rows=fine_rows)
    outcome = run.run_module("reads", loader({"reads": module}), quick=False)
    assert outcome.rows[0][1].startswith("FAILED: AssertionError: at test_bench_front_door.py:")


def test_a_module_that_does_not_import_fails() -> None:
    def load(name: str) -> Any:
        raise SyntaxError("invalid syntax (bench_reads.py, line 3)")

    outcome = run.run_module("reads", load, quick=False)
    assert outcome.status == "failed"
    assert outcome.rows[0][1] == "FAILED: SyntaxError: invalid syntax (bench_reads.py, line 3)"
