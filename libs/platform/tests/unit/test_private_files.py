"""Secret stores' SQLite files are private to the service (0600 files, 0700 directories,
whatever the umask) and forget what is deleted from them."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from v2v_platform.esign import Signer, SqlSignerStore, hash_password, open_signer_store
from v2v_platform.private_files import (
    UnsafeSqliteStore,
    checkpoint_wal,
    open_private_sqlite,
    sqlite_files,
)


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(paths: list[Path]) -> dict[str, int]:
    return {path.name: mode(path) for path in paths}


def present(path: Path) -> list[Path]:
    return [p for p in sqlite_files(path) if p.exists()]


def test_a_new_store_and_the_directories_it_creates_are_private(tmp_path: Path) -> None:
    path = tmp_path / "site" / "data" / "secrets.sqlite"
    connection = open_private_sqlite(path)
    try:
        connection.execute("CREATE TABLE t (secret BLOB)")
        connection.execute("INSERT INTO t VALUES (?)", (b"x" * 32,))
        files = present(path)
        assert [p.name for p in files] == [path.name, f"{path.name}-wal", f"{path.name}-shm"]
        assert modes(files) == {p.name: 0o600 for p in files}
        assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    finally:
        connection.close()


def test_an_existing_directory_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "data"
    shared.mkdir(mode=0o755)
    open_private_sqlite(shared / "secrets.sqlite").close()
    assert mode(shared) == 0o755 and mode(shared / "secrets.sqlite") == 0o600


def test_loose_files_left_behind_are_tightened_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.sqlite"
    sqlite3.connect(path).close()
    for loose in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        loose.touch()
        loose.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="v2v_platform.private_files"):
        connection = open_private_sqlite(path)
    try:
        files = present(path)
        assert modes(files) == {p.name: 0o600 for p in files}
        for name in ("secrets.sqlite", "secrets.sqlite-wal", "secrets.sqlite-shm"):
            assert any(f"{name} from 0644 to 0600" in m for m in caplog.messages), name
    finally:
        connection.close()


def test_the_connection_writes_a_wal_with_secure_delete(tmp_path: Path) -> None:
    connection = open_private_sqlite(tmp_path / "secrets.sqlite")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA secure_delete").fetchone() == (1,)
    finally:
        connection.close()


def test_a_deleted_secret_is_in_no_file_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite"
    connection = open_private_sqlite(path)
    try:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, secret BLOB)")
        rows = [(n, secrets.token_bytes(32)) for n in range(300)]
        connection.executemany("INSERT INTO t VALUES (?, ?)", rows)
        connection.execute("DELETE FROM t WHERE id = 123")
        checkpoint_wal(connection)
        content = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert rows[123][1] not in content and rows[124][1] in content
        assert Path(f"{path}-wal").stat().st_size == 0
    finally:
        connection.close()


def test_the_checkpoint_refuses_to_pretend_when_a_reader_holds_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite"
    connection = open_private_sqlite(path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("CREATE TABLE t (secret BLOB)")
        connection.execute("INSERT INTO t VALUES (x'00')")
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM t").fetchall()
        connection.execute("DELETE FROM t")
        connection.execute("PRAGMA busy_timeout=10")
        with pytest.raises(UnsafeSqliteStore, match="another connection is reading"):
            checkpoint_wal(connection)
        reader.execute("COMMIT")
        checkpoint_wal(connection)
    finally:
        reader.close()
        connection.close()


def test_an_in_memory_database_needs_no_file(tmp_path: Path) -> None:
    connection = open_private_sqlite(":memory:")
    connection.execute("CREATE TABLE t (x)")
    connection.close()
    assert not Path(":memory:").exists()


def test_the_signer_store_is_private_under_umask_022(tmp_path: Path) -> None:
    store = open_signer_store(None, tmp_path / "data" / "release.sqlite")
    assert isinstance(store, SqlSignerStore)
    try:
        signer = Signer("QC-L", "qp-1", "Quinn", frozenset({"qp"}), hash_password("a long pass"))
        store.put(signer)
        assert store.get("QC-L", "qp-1") == signer
        files = present(tmp_path / "data" / "release.signers.sqlite")
        assert [p.name for p in files] == [
            "release.signers.sqlite",
            "release.signers.sqlite-wal",
            "release.signers.sqlite-shm",
        ]
        assert modes(files) == {p.name: 0o600 for p in files}
        assert mode(tmp_path / "data") == 0o700
    finally:
        store.close()
