"""What `up` records and how `down` stops it: process identity (a reused process id is not
ours), SIGTERM then SIGKILL with a bound, ports kept across `down`/`up`, the record file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from v2v_simulator.up_record import (
    ServiceRecord,
    UpError,
    UpRecord,
    choose_ports,
    load_ports,
    process_alive,
    running,
    start_ticks,
    stop_services,
)

IGNORES_SIGTERM = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ready', flush=True); time.sleep(120)"
)
STOPS_ON_SIGTERM = "import sys, time; print('ready', flush=True); time.sleep(120)"


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()


def spawn(children: list[subprocess.Popen[str]], code: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # as ServiceProcess starts services
    )
    children.append(child)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def record_of(name: str, child: subprocess.Popen[str], ticks: int | None = None) -> ServiceRecord:
    return ServiceRecord(
        name=name,
        context="release",
        site_id="GMP-1",
        pid=child.pid,
        start_ticks=start_ticks(child.pid) if ticks is None else ticks,
        started_at="2026-12-05T07:00:00+00:00",
        grpc_port=50064,
        http_port=8064,
        log="/dev/null",
    )


def up_record(tmp_path: Path, services: list[ServiceRecord]) -> UpRecord:
    return UpRecord(
        data_dir=str(tmp_path),
        started_at="2026-12-05T07:00:00+00:00",
        kafka_bootstrap="127.0.0.1:9092",
        broker_started=True,
        store="sqlite",
        hospitals=2,
        gmp_sites=1,
        in_house=1,
        services=services,
    )


def test_a_process_is_ours_only_while_it_runs_with_the_recorded_start_time(
    children: list[subprocess.Popen[str]],
) -> None:
    child = spawn(children, STOPS_ON_SIGTERM)
    ticks = start_ticks(child.pid)
    assert ticks is not None
    assert process_alive(child.pid, ticks)
    assert not process_alive(child.pid, ticks + 1)  # the id now names another process
    child.kill()
    child.wait()
    assert not process_alive(child.pid, ticks)


def test_down_terminates_kills_the_one_that_ignores_sigterm_and_names_the_gone(
    children: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    polite = spawn(children, STOPS_ON_SIGTERM)
    stubborn = spawn(children, IGNORES_SIGTERM)
    gone = spawn(children, STOPS_ON_SIGTERM)
    gone.kill()
    gone.wait()
    records = [record_of("polite", polite), record_of("stubborn", stubborn)]
    records.append(record_of("gone", gone, ticks=1))
    outcome = stop_services(records, grace_s=1.0)
    assert outcome.stopped == ["polite"]
    assert outcome.killed == ["stubborn"]
    assert outcome.gone == ["gone"]
    assert polite.wait(timeout=10) == -15 and stubborn.wait(timeout=10) == -9


def test_a_reused_process_id_is_never_signalled(
    children: list[subprocess.Popen[str]],
) -> None:
    stranger = spawn(children, STOPS_ON_SIGTERM)
    ticks = start_ticks(stranger.pid)
    assert ticks is not None
    outcome = stop_services([record_of("ours", stranger, ticks=ticks - 1)], grace_s=0.5)
    assert outcome.gone == ["ours"]
    assert stranger.poll() is None


def test_the_record_round_trips_and_a_damaged_one_is_refused(
    children: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    child = spawn(children, STOPS_ON_SIGTERM)
    record = up_record(tmp_path, [record_of("release-GMP-1", child)])
    record.save(tmp_path)
    assert UpRecord.load(tmp_path) == record
    assert running(tmp_path) == record
    assert record.service("release", "GMP-1").pid == child.pid
    with pytest.raises(UpError):
        record.service("release", "GMP-2")
    child.kill()
    child.wait()
    assert running(tmp_path) is None  # a service of it stopped: not running
    UpRecord.path(tmp_path).write_text("{not json")
    with pytest.raises(UpError, match="remove it"):
        UpRecord.load(tmp_path)
    UpRecord.remove(tmp_path)
    assert UpRecord.load(tmp_path) is None


def test_ports_are_kept_when_free_and_replaced_when_taken(tmp_path: Path) -> None:
    free = choose_ports(["a", "b", "c"], {})
    assert len({port for pair in free.values() for port in pair}) == 6
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        busy = int(taken.getsockname()[1])
        preferred = {"a": free["a"], "b": (busy, free["b"][1])}
        chosen = choose_ports(["a", "b", "c"], preferred)
    finally:
        taken.close()
    assert chosen["a"] == free["a"]
    assert busy not in chosen["b"]
    ports = [port for pair in chosen.values() for port in pair]
    assert len(set(ports)) == 6, "a new port must not be one kept for another service"


def test_ports_file_is_read_leniently(tmp_path: Path) -> None:
    assert load_ports(tmp_path) == {}
    (tmp_path / "ports.json").write_text('{"projection-AUDIT": [50066, 8066]}')
    assert load_ports(tmp_path) == {"projection-AUDIT": (50066, 8066)}
    (tmp_path / "ports.json").write_text("[]")
    assert load_ports(tmp_path) == {}


def test_start_ticks_of_no_process_is_none() -> None:
    assert start_ticks(2**22 + 12345) is None
    assert start_ticks(os.getpid()) is not None
