"""`up`/`down`/`status` without a running system: nothing up, a stale record, the site tokens
`up` writes for the console's login, and what it prints (read by a person)."""

from __future__ import annotations

import datetime
import re
import signal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from v2v_platform.auth.tokens import issue_site_token
from v2v_simulator.cli import app
from v2v_simulator.consortium import Consortium
from v2v_simulator.demo import DemoState
from v2v_simulator.setup import ensure_pki
from v2v_simulator.system import System, services_of
from v2v_simulator.up import ensure_site_tokens, print_info, token_expiry
from v2v_simulator.up_record import ServiceRecord, UpRecord, save_ports

RUNNER = CliRunner()
NOT_UP = {"V2V_POSTGRES_DSN": "", "V2V_KAFKA_BOOTSTRAP": ""}


def stale_record(data_dir: Path) -> UpRecord:
    """A record of services that no longer run (process id 0 is never a service)."""
    services = [
        ServiceRecord(
            name=System.name(context, site),
            context=context,
            site_id=site,
            pid=0,
            start_ticks=None,
            started_at="2026-12-05T07:00:00+00:00",
            grpc_port=50000 + n,
            http_port=8000 + n,
            log=str(data_dir / "logs" / f"{context}-{site}.log"),
        )
        for n, (context, site) in enumerate(services_of(Consortium.sized(2, 1, 1)))
    ]
    return UpRecord(
        data_dir=str(data_dir),
        started_at="2026-12-05T07:00:00+00:00",
        kafka_bootstrap="127.0.0.1:39092",
        broker_started=False,
        store="sqlite",
        hospitals=2,
        gmp_sites=1,
        in_house=1,
        services=services,
    )


def test_status_and_down_when_nothing_is_up(tmp_path: Path) -> None:
    status = RUNNER.invoke(app, ["status", "--data-dir", str(tmp_path)], env=NOT_UP)
    assert status.exit_code == 3 and "nothing is up" in status.output
    down = RUNNER.invoke(app, ["down", "--data-dir", str(tmp_path)], env=NOT_UP)
    assert down.exit_code == 0 and "nothing is up" in down.output


def test_status_reports_services_that_stopped(tmp_path: Path) -> None:
    stale_record(tmp_path).save(tmp_path)
    status = RUNNER.invoke(app, ["status", "--data-dir", str(tmp_path)], env=NOT_UP)
    assert status.exit_code == 1, status.output
    assert status.output.count("stopped") == 12


def test_down_forgets_a_record_whose_services_stopped(tmp_path: Path) -> None:
    stale_record(tmp_path).save(tmp_path)
    down = RUNNER.invoke(app, ["down", "--data-dir", str(tmp_path)], env=NOT_UP)
    assert down.exit_code == 0, down.output
    assert "were not running any more" in down.output
    assert UpRecord.load(tmp_path) is None


def test_demo_refuses_to_run_beside_a_stale_up(tmp_path: Path) -> None:
    DemoState(patients_so_far=3, in_house=1).save(tmp_path)
    stale_record(tmp_path).save(tmp_path)
    sigterm_before = signal.getsignal(signal.SIGTERM)
    result = RUNNER.invoke(
        app, ["demo", "--data-dir", str(tmp_path), "--patients", "1"], env=NOT_UP
    )
    assert result.exit_code == 1, result.output
    assert f"v2v_simulator down --data-dir {tmp_path}" in " ".join(result.output.split())
    assert signal.getsignal(signal.SIGTERM) == sigterm_before  # the demo's handler is gone


def test_clean_forgets_what_up_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    stale_record(data).save(data)
    result = RUNNER.invoke(app, ["clean", "--data-dir", str(data)], env=NOT_UP)
    assert result.exit_code == 0, result.output
    assert not data.exists()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("up-pki") / "pki"
    ensure_pki(folder, Consortium.sized(2, 1, 1))
    return folder


def test_site_tokens_are_written_owner_only_kept_while_valid_renewed_near_expiry(
    tmp_path: Path, pki: Path
) -> None:
    tokens = ensure_site_tokens(pki, tmp_path, ["AUDIT", "HOSP-A"])
    path, expiry = tokens["AUDIT"]
    assert path == tmp_path / "tokens" / "AUDIT.token"
    assert path.stat().st_mode & 0o777 == 0o600
    now = datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=6) < expiry - now <= datetime.timedelta(days=7)
    first = path.read_text()
    assert ensure_site_tokens(pki, tmp_path, ["AUDIT"])["AUDIT"][1] == expiry
    assert path.read_text() == first
    path.write_text(issue_site_token(pki, "AUDIT", days=0))  # expires now
    renewed = ensure_site_tokens(pki, tmp_path, ["AUDIT"])["AUDIT"][1]
    assert renewed - now > datetime.timedelta(days=6)
    assert token_expiry("not a token") is None


def test_what_up_prints_a_person_can_act_on(tmp_path: Path, pki: Path) -> None:
    record = stale_record(tmp_path)
    (tmp_path / "pki").symlink_to(pki)
    save_ports(tmp_path, [])
    site_tokens = ensure_site_tokens(pki, tmp_path, ["AUDIT", "HOSP-A"])
    console = Console(record=True, width=300, color_system=None)
    state = DemoState(patients_so_far=12, in_house=1)
    print_info(record, state, site_tokens, {"C-1": "courier-token-1"}, console)
    text = console.export_text()
    projection = record.service("projection", "AUDIT")
    logistics = record.service("logistics", "LOGI-1")
    assert f"Console  {projection.http_base}/console/" in text
    assert f"cat {tmp_path}/tokens/AUDIT.token" in text
    assert f"cat {tmp_path}/tokens/HOSP-A.token" in text
    assert f"Courier page  {logistics.http_base}/courier" in text
    assert 'token courier-token-1, password "courier shift password"' in text
    assert f"CA {tmp_path}/pki/ca.crt" in text
    assert f"-key {tmp_path}/pki/sites/AUDIT/tls.key {projection.grpc_target} list" in text
    for service in record.services:
        assert re.search(rf"{service.context}\s+{service.site_id}\s+{service.grpc_target}", text)
    keys = f"--keys {tmp_path}/pki"
    assert f"audit verify --bootstrap 127.0.0.1:39092 {keys}" in text
    assert "audit export --bootstrap 127.0.0.1:39092 --out history.v2vh" in text
    assert "audit checkpoints pull --bootstrap 127.0.0.1:39092 --out checkpoints.v2vh" in text
    assert f"audit prove --coi <COI> --bootstrap 127.0.0.1:39092 {keys}" in text
    assert f"python -m v2v_simulator down --data-dir {tmp_path}" in text
    assert "12 simulated patients so far" in text
