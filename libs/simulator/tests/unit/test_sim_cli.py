"""`python -m v2v_simulator clean` removes only a demo's data directory."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from v2v_simulator.cli import app
from v2v_simulator.demo import DemoState

RUNNER = CliRunner()


def test_clean_removes_a_demo_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    (data / "logs").mkdir(parents=True)
    DemoState(patients_so_far=30).save(data)
    result = RUNNER.invoke(app, ["clean", "--data-dir", str(data)], env={"V2V_POSTGRES_DSN": ""})
    assert result.exit_code == 0, result.output
    assert not data.exists()


def test_clean_refuses_a_directory_that_is_not_a_demo_one(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = RUNNER.invoke(app, ["clean", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert (tmp_path / "precious.txt").is_file()


def test_clean_of_nothing_is_fine(tmp_path: Path) -> None:
    result = RUNNER.invoke(app, ["clean", "--data-dir", str(tmp_path / "absent")])
    assert result.exit_code == 0 and "nothing to clean" in result.output


def test_demo_refuses_a_consortium_other_than_the_stored_one(tmp_path: Path) -> None:
    DemoState(hospitals=3, gmp_sites=1).save(tmp_path)
    result = RUNNER.invoke(app, ["demo", "--data-dir", str(tmp_path), "--patients", "1"])
    assert result.exit_code == 1
    assert "3 hospital(s)" in result.output and "clean" in result.output


def test_a_data_dir_from_before_in_house_sites_is_refused_with_the_options_that_fit(
    tmp_path: Path,
) -> None:
    """A stored state without `in_house` (older data dirs) is a consortium without one; the
    default demo now has one, so it says which options reuse the stored consortium."""
    (tmp_path / "simulator.json").write_text(
        '{"hospitals": 2, "gmp_sites": 1, "seed": 7, "patients_so_far": 30}'
    )
    result = RUNNER.invoke(app, ["demo", "--data-dir", str(tmp_path), "--patients", "1"])
    assert result.exit_code == 1
    assert "--in-house 0" in " ".join(result.output.split())
