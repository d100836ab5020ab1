"""Settings from V2V_* variables: defaults, the two windows (the site's protocol rules) and
their allowed ranges."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from v2v_infusion.adapters.facts_projection import FACTS_FEED
from v2v_infusion.settings import InfusionSettings
from v2v_platform.config import ConfigurationError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("V2V_SITE_ID", "HOSP-A")
    monkeypatch.setenv("V2V_PKI_DIR", str(tmp_path))
    settings = load_settings(InfusionSettings)
    assert (settings.grpc_address, settings.http_port) == ("127.0.0.1:50065", 8065)
    assert settings.protocol_rules().post_thaw == timedelta(minutes=30)
    assert settings.protocol_rules().fresh_product == timedelta(hours=72)
    assert settings.signing_key == tmp_path / "sites" / "HOSP-A" / "signing.key"
    assert settings.side_sqlite_path(FACTS_FEED.sqlite_suffix) is None


def test_windows_are_configurable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("V2V_POST_THAW_WINDOW_MINUTES", "180")
    monkeypatch.setenv("V2V_FRESH_PRODUCT_WINDOW_HOURS", "48")
    monkeypatch.setenv("V2V_SQLITE_PATH", str(tmp_path / "infusion.sqlite"))
    settings = load_settings(InfusionSettings, site_id="HOSP-A", pki_dir=tmp_path)
    assert settings.protocol_rules().post_thaw_minutes == 180
    assert settings.protocol_rules().fresh_product == timedelta(hours=48)
    assert settings.side_sqlite_path(FACTS_FEED.sqlite_suffix) == tmp_path / "infusion.facts.sqlite"
    assert settings.registers_env()["SQLITE_DBNAME"].endswith("infusion.registers.sqlite")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("V2V_POST_THAW_WINDOW_MINUTES", "0"),
        ("V2V_POST_THAW_WINDOW_MINUTES", "181"),
        ("V2V_FRESH_PRODUCT_WINDOW_HOURS", "0"),
        ("V2V_SITE_ID", "hosp a"),
    ],
)
def test_bad_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.setenv("V2V_SITE_ID", "HOSP-A")
    monkeypatch.setenv("V2V_PKI_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(InfusionSettings)
    assert any(problem.startswith(variable) for problem in raised.value.problems)
