"""The courier-token store is private to the service: its SQLite file and companions are
0600 and the directories it creates 0700, whatever the process umask."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from v2v_logistics.adapters.courier_tokens import sqlite_tokens
from v2v_logistics.bootstrap import courier_tokens_for
from v2v_logistics.settings import LogisticsSettings


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_configured_token_store_is_private_under_umask_022(tmp_path: Path) -> None:
    settings = LogisticsSettings(
        site_id="COUR-Z", pki_dir=tmp_path / "pki", sqlite_path=tmp_path / "data" / "lg.sqlite"
    )
    tokens = courier_tokens_for(settings)
    token = tokens.issue("C-17", "Kim Courier", "HOSP-A")
    identity = tokens.identify(token)
    assert identity is not None and identity.courier_id == "C-17"
    path = tmp_path / "data" / "lg.courier-tokens.sqlite"
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert mode(tmp_path / "data") == 0o700


def test_a_loose_token_store_is_tightened_when_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.sqlite"
    token = sqlite_tokens(path).issue("C-17", "Kim Courier", "HOSP-A")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="v2v_platform.private_files"):
        assert sqlite_tokens(path).identify(token) is not None
    assert mode(path) == 0o600
    assert f"{path} from 0644 to 0600" in caplog.text
