"""`python -m v2v_projection rebuild` forgets the stored state so the next start re-reads every
topic from offset zero; settings name what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from v2v_platform.config import ConfigurationError, load_settings
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_projection.__main__ import cli
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.settings import ProjectionSettings
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.synthetic.chains import generate_history


def test_rebuild_clears_the_envelopes_and_offsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "projection.sqlite"
    generated = generate_history(5, 1)
    verifier = InlineVerifier(EnvelopeGate(generated.keys))
    projection = ChainProjection(SqliteProjectionStore(path), verifier=verifier)
    projection.ingest(
        [(topic, 0, offset, value) for topic, offset, value in generated.all_records()]
    )
    projection.close()
    monkeypatch.setenv("V2V_SITE_ID", "PROJ-1")
    monkeypatch.setenv("V2V_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("V2V_SQLITE_PATH", str(path))

    result = CliRunner().invoke(cli, ["rebuild"])

    assert result.exit_code == 0, result.output
    assert "the next start consumes every topic from offset zero" in result.output
    store = SqliteProjectionStore(path)
    assert (store.count(), store.offsets()) == (0, {})


def test_settings_name_the_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("V2V_SITE_ID", raising=False)
    monkeypatch.delenv("V2V_PKI_DIR", raising=False)

    with pytest.raises(ConfigurationError) as refused:
        load_settings(ProjectionSettings)

    assert "V2V_SITE_ID is not set" in str(refused.value)
    assert "V2V_PKI_DIR is not set" in str(refused.value)


def test_the_defaults_are_the_documented_ports(tmp_path: Path) -> None:
    settings = load_settings(ProjectionSettings, site_id="PROJ-1", pki_dir=tmp_path)

    assert (settings.grpc_address, settings.http_port) == ("127.0.0.1:50066", 8066)
