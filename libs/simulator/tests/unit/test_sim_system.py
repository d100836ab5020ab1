"""How the services are defined (settings, stores, ports, logs) and watched, without
starting the real ones."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from v2v_platform.processes import ServiceDied, ServiceProcess, free_ports
from v2v_simulator.consortium import Consortium
from v2v_simulator.stores import Stores, database_name
from v2v_simulator.system import System


def test_every_service_gets_its_site_store_and_broker(tmp_path: Path) -> None:
    system = System(Consortium.sized(), tmp_path / "pki", Stores(tmp_path), "127.0.0.1:9", tmp_path)
    system.define_all()
    intake = system.service("intake", "HOSP-B")
    manufacturing = system.service("manufacturing", "GMP-1")
    assert intake.module == "v2v_intake"
    assert (intake.env["V2V_FIN"], manufacturing.env["V2V_FIN"]) == ("B1234", "P1234")
    assert intake.env["V2V_SQLITE_PATH"] == str(tmp_path / "stores" / "intake-HOSP-B.sqlite")
    assert system.service("projection", "AUDIT").env["V2V_SITE_ID"] == "AUDIT"
    assert {p.env["V2V_KAFKA_BOOTSTRAP"] for p in system.services.values()} == {"127.0.0.1:9"}
    assert intake.log == tmp_path / "intake-HOSP-B.log"


def test_ports_are_chosen_all_at_once_and_all_differ() -> None:
    ports = free_ports(40)
    assert len(set(ports)) == 40


@pytest.mark.parametrize(
    ("prefix", "service", "name"),
    [
        ("v2v", "intake-HOSP-A", "v2v_intake_hosp_a"),
        ("v2v_test_0a1b", "release-GMP-1", "v2v_test_0a1b_release_gmp_1"),
    ],
)
def test_each_service_has_its_own_database_name(prefix: str, service: str, name: str) -> None:
    assert database_name(prefix, service) == name


def test_a_database_name_too_long_for_postgresql_is_refused() -> None:
    with pytest.raises(ValueError, match="63"):
        database_name("x" * 60, "infusion-HOSP-A")


def test_a_service_that_exits_on_its_own_is_reported_with_its_log(tmp_path: Path) -> None:
    process = ServiceProcess("zen-SITE", "this", {}, tmp_path / "zen.log")  # prints, then exits
    process.start()
    assert process.popen is not None
    process.popen.wait(timeout=30)
    with pytest.raises(ServiceDied, match="zen-SITE exited with status 0") as died:
        process.check_alive()
    assert "Beautiful is better than ugly" in str(died.value)
    assert process.stop() == 0


def test_stop_ends_a_running_process_and_reports_its_status(tmp_path: Path) -> None:
    (tmp_path / "idle_service.py").write_text(
        'import time\nprint("up", flush=True)\ntime.sleep(60)\n'
    )
    env = {"PYTHONPATH": str(tmp_path)}
    process = ServiceProcess("idle-SITE", "idle_service", env, tmp_path / "idle.log")
    process.start()
    deadline = time.monotonic() + 30
    while "up" not in process.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)  # only until the child runs, so SIGTERM meets it
    assert process.stop(grace_s=10) == -15  # no handler: SIGTERM's default action
