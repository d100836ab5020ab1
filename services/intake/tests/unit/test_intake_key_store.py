"""Secrets at rest: the SQLite key store is private to the service (0600 files, 0700
directories) and crypto-shredding leaves no copy of the COI's key in any file of the data
directory while the service runs."""

from __future__ import annotations

import base64
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from v2v_intake.adapters.key_store import SqliteKeyStore
from v2v_intake.bootstrap import IntakeService, bootstrap
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_testkit.intake import DETAILS, FakeSlots, FixedClock, declare_din_block, operator, reader


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """Files are private whatever the process umask (022 is the usual default)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec("HOSP-A:collection")])
    declare_din_block(directory)
    return directory


@pytest.fixture
def service(pki: Path, tmp_path: Path) -> Iterator[IntakeService]:
    settings = IntakeSettings(
        site_id="HOSP-A",
        fin="A1234",
        pki_dir=pki,
        manufacturing_target="127.0.0.1:1",
        sqlite_path=tmp_path / "data" / "intake.sqlite",
    )
    service = bootstrap(settings, manufacturing=FakeSlots(), clock=FixedClock())
    yield service
    service.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def encodings(key: bytes) -> list[bytes]:
    """The forms a key could be written in: raw, hex, base64 (standard, URL-safe, unpadded)."""
    forms = [key, key.hex().encode(), key.hex().upper().encode()]
    for encoded in (base64.b64encode(key), base64.urlsafe_b64encode(key)):
        forms += [encoded, encoded.rstrip(b"=")]
    return forms


def files_holding(directory: Path, key: bytes) -> list[str]:
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        content = path.read_bytes()
        found += [f"{path.name} ({i})" for i, form in enumerate(encodings(key)) if form in content]
    return found


def test_erasing_personal_details_leaves_no_copy_of_the_key_in_the_data_directory(
    service: IntakeService, tmp_path: Path
) -> None:
    app = service.app
    cois = [app.enrol_patient(f"PSN-{n:04d}", DETAILS, "HOSP-A", operator()) for n in range(40)]
    erased = cois[17]
    key = app.keys.get(erased)
    assert key is not None and len(key) == 32
    assert files_holding(tmp_path / "data", key), "the key is stored before the erasure"

    app.erase_personal_details(erased, operator(reason="consent withdrawn"))

    assert app.keys.get(erased) is None
    assert files_holding(tmp_path / "data", key) == []
    assert app.get_patient(erased, reader()).personal_details is None
    assert app.get_patient(cois[18], reader()).personal_details == DETAILS


def test_the_event_store_holds_sealed_details_and_never_a_key(
    service: IntakeService, tmp_path: Path
) -> None:
    app = service.app
    cois = [app.enrol_patient(f"PSN-{n:04d}", DETAILS, "HOSP-A", operator()) for n in range(5)]
    event_stores = [p for p in (tmp_path / "data").iterdir() if ".keys." not in p.name]
    content = b"".join(p.read_bytes() for p in event_stores if p.is_file())
    assert b"aesgcm1:" in content and DETAILS.mrn.encode() not in content
    for coi in cois:
        key = app.keys.get(coi)
        assert key is not None
        assert not any(form in content for form in encodings(key))


def test_a_store_holding_many_keys_shreds_each_destroyed_one(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys" / "intake.keys.sqlite")
    keys = {f"CHA123425{n:06d}": store.get_or_create(f"CHA123425{n:06d}") for n in range(600)}
    destroyed = list(keys)[::37]
    for coi in destroyed:
        store.destroy(coi)
        store.get_or_create(f"CHA999925{len(coi)}{coi[-4:]}")
    try:
        for coi in destroyed:
            assert files_holding(tmp_path / "keys", keys[coi]) == [], coi
        kept = list(keys)[1]
        assert store.get(kept) == keys[kept]
    finally:
        store.close()


def test_the_key_store_files_are_private_under_umask_022(tmp_path: Path) -> None:
    path = tmp_path / "site" / "data" / "intake.keys.sqlite"
    store = SqliteKeyStore(path)
    try:
        store.get_or_create("CHA123425000017")
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    finally:
        store.close()


def test_a_loose_key_store_file_is_tightened_when_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "intake.keys.sqlite"
    SqliteKeyStore(path).close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="v2v_platform.private_files"):
        SqliteKeyStore(path).close()
    assert mode(path) == 0o600
    assert f"{path} from 0644 to 0600" in caplog.text
