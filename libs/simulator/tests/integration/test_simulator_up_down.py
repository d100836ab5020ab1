"""`python -m v2v_simulator up|status|down` as a person runs them: `up` starts the local broker
and every service in a data directory of its own, seeds two patients and returns with them
running; the URLs it prints answer; `status` sees them ready; a second `up` starts nothing new;
`demo` adds its patients to it; after a service died, `up` starts everything again on the same
ports; `down` leaves no process behind. A service that cannot start: `up` names it and its log
and leaves nothing running."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from v2v_platform.testing.infra import find_repo_root
from v2v_platform.testing.producing import eventually
from v2v_simulator.broker import LocalBroker
from v2v_simulator.up_record import UpRecord, process_alive

pytestmark = pytest.mark.integration

REPO = find_repo_root(Path.cwd(), Path(__file__))
assert REPO is not None
COMMAND_TIMEOUT_S = 600


def simulator(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m v2v_simulator <args> --data-dir <data_dir>` from the repository root, on
    the data directory's own broker and SQLite (no V2V_KAFKA_BOOTSTRAP, no PostgreSQL)."""
    settings = {k: v for k, v in os.environ.items() if k not in ("V2V_KAFKA_BOOTSTRAP",)}
    settings.pop("V2V_POSTGRES_DSN", None)
    settings.update({"COLUMNS": "200", "NO_COLOR": "1", **env})
    return subprocess.run(
        [sys.executable, "-m", "v2v_simulator", *args, "--data-dir", str(data_dir)],
        cwd=REPO,
        env=settings,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def v2v_processes(data_dir: Path) -> list[int]:
    """Every running service process whose settings point into `data_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state in ("Z", "X") or b"-m" not in command:
            continue
        module = command[command.index(b"-m") + 1 :][:1]
        if module and module[0].startswith(b"v2v_") and str(data_dir).encode() in environment:
            found.append(int(entry.name))
    return found


def printed_url(output: str, label: str) -> str:
    match = re.search(rf"{label}\s+(http://127\.0\.0\.1:\d+/\S*)", output)
    assert match, f"no {label} URL in:\n{output}"
    return match.group(1)


def stop_leftovers(data_dir: Path) -> None:
    if UpRecord.load(data_dir) is not None:
        simulator(data_dir, "down")
    if LocalBroker(data_dir).running():
        LocalBroker(data_dir).down()


def test_up_seeds_prints_where_to_look_stays_running_and_down_stops_everything(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "v2v-data"
    try:
        started = simulator(data_dir, "up", "--patients", "2")
        output = started.stdout + started.stderr
        assert started.returncode == 0, output
        record = UpRecord.load(data_dir)
        assert record is not None and record.broker_started
        assert len(record.services) == 12 and all(s.alive for s in record.services), output

        # what a person needs is printed
        console_url = printed_url(output, "Console")
        projection = record.service("projection", "AUDIT")
        assert console_url == f"{projection.http_base}/console/"
        courier_url = printed_url(output, "Courier page")
        assert courier_url == f"{record.service('logistics', 'LOGI-1').http_base}/courier"
        for site in ("AUDIT", "HOSP-A"):
            token = data_dir / "tokens" / f"{site}.token"
            assert f"cat {token}" in output
            assert token.stat().st_mode & 0o777 == 0o600
        couriers = json.loads((data_dir / "courier-tokens.json").read_text())
        assert f"token {couriers['C-1']}" in output and "courier shift password" in output
        assert f"-cert {data_dir}/pki/sites/AUDIT/tls.crt" in output
        for command in ("verify", "export", "checkpoints pull", "prove --coi CH"):
            assert f"audit {command}" in output, command
        assert f"--bootstrap {record.kafka_bootstrap} --keys {data_dir}/pki" in output
        assert json.loads((data_dir / "simulator.json").read_text())["patients_so_far"] == 2

        # the services outlived the command, and what it printed answers
        assert httpx.get(f"{projection.http_base}/ready", timeout=10).status_code == 200
        assert httpx.get(courier_url, timeout=10).status_code == 200
        status = simulator(data_dir, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SERVING") == 12 and "NOT_SERVING" not in status.stdout

        # up again: the same processes, the same information, no patients added
        again = simulator(data_dir, "up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already up" in again.stdout
        assert printed_url(again.stdout, "Console") == console_url
        second = UpRecord.load(data_dir)
        assert second is not None
        assert [s.pid for s in second.services] == [s.pid for s in record.services]
        assert json.loads((data_dir / "simulator.json").read_text())["patients_so_far"] == 2

        # the demo adds its patients to the running consortium and leaves it running
        demo = simulator(data_dir, "demo", "--patients", "1")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "adding the demo's patients" in demo.stdout and "stays up" in demo.stdout
        assert all(s.alive for s in record.services)
        assert json.loads((data_dir / "simulator.json").read_text())["patients_so_far"] == 3

        # a service that died (a crash): status says so; up starts everything again, on the
        # same ports, and owns the broker still
        projection_pid = projection.pid
        os.kill(projection_pid, signal.SIGKILL)
        eventually(lambda: not projection.alive, "the projection gone")
        status = simulator(data_dir, "status")
        assert status.returncode == 1 and "stopped" in status.stdout, status.stdout
        restarted = simulator(data_dir, "up")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert "not running any more: projection-AUDIT" in restarted.stdout
        assert printed_url(restarted.stdout, "Console") == console_url
        third = UpRecord.load(data_dir)
        assert third is not None and third.broker_started
        assert all(s.alive for s in third.services)
        assert not any(process_alive(s.pid, s.start_ticks) for s in record.services)
        assert httpx.get(f"{projection.http_base}/ready", timeout=10).status_code == 200

        # down: every service and the broker stopped, the record gone
        record = third
        stopped = simulator(data_dir, "down")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "killed" not in stopped.stdout, stopped.stdout
        assert not any(process_alive(s.pid, s.start_ticks) for s in record.services)
        assert v2v_processes(data_dir) == []
        assert UpRecord.load(data_dir) is None
        assert not LocalBroker(data_dir).running()
        status = simulator(data_dir, "status")
        assert status.returncode == 3 and "nothing is up" in status.stdout
    finally:
        stop_leftovers(data_dir)


def test_a_service_that_cannot_start_is_named_with_its_log_and_nothing_stays_running(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "v2v-data"
    missing = tmp_path / "no-such-specs.json"
    try:
        started = simulator(  # one release service (no in-house site): one service fails
            data_dir,
            "up",
            "--patients",
            "0",
            "--in-house",
            "0",
            V2V_RELEASE_SPECS_FILE=str(missing),
        )
        output = " ".join((started.stdout + started.stderr).split())
        assert started.returncode == 1, output
        assert "up failed" in output
        log = data_dir / "logs" / "release-GMP-1.log"
        assert f"release-GMP-1 exited: log {log}" in output, output
        assert "not ready" not in output, "only the services that failed are named"
        assert "everything `up` started was stopped" in output
        assert UpRecord.load(data_dir) is None
        eventually(lambda: v2v_processes(data_dir) == [], "no service process left", 30)
        assert not LocalBroker(data_dir).running()
    finally:
        stop_leftovers(data_dir)
