"""Files that hold secrets (per-COI data keys, signers' password hashes, courier token hashes)
are the service user's alone, whatever the process umask.

`open_private_sqlite(path)` is how such a store opens its SQLite file: the directories it
creates are 0700, the database file is created 0600 and SQLite gives its `-wal`, `-shm` and
`-journal` companions the database file's mode; an existing file (or companion left by a
crash) that others may read is tightened to 0600 and the change is logged. The connection
writes a WAL with `secure_delete` on, so `checkpoint_wal(connection)` right after a delete
leaves the deleted bytes in neither the database file nor its WAL (crypto-shredding).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
IN_MEMORY = ":memory:"
SHREDDING_JOURNAL_MODES = ("wal", "delete")
"""Journal modes in which no file keeps a deleted row's old page: the WAL is checkpointed and
truncated after the delete; a rollback journal is deleted at commit."""


class UnsafeSqliteStore(RuntimeError):
    """A secret store's SQLite file cannot be made to forget what was deleted."""


def private_directory(directory: Path) -> None:
    """Create the directory and its missing parents with mode 0700 (existing ones are left
    as they are: a data directory may be shared with the service's other files)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue
        created.chmod(PRIVATE_DIRECTORY_MODE)


def private_file(path: Path) -> None:
    """Create the (empty) file with mode 0600, or tighten an existing one others may read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        tighten(path)
        return
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)


def tighten(path: Path) -> None:
    """Take group and other permissions off an existing file (logged when there were any)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        path.chmod(mode & 0o700)
        log.warning("tightened %s from %04o to %04o: it holds secrets", path, mode, mode & 0o700)


def sqlite_files(path: Path) -> list[Path]:
    """The database file and the companions SQLite may keep beside it."""
    return [path, *(Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS)]


def open_private_sqlite(path: Path | str) -> sqlite3.Connection:
    """An autocommit connection, usable from any thread (the caller holds a lock), to a
    SQLite file private to this user, in WAL mode with secure_delete on."""
    if str(path) == IN_MEMORY:
        return sqlite3.connect(IN_MEMORY, check_same_thread=False, isolation_level=None)
    path = Path(path)
    private_directory(path.parent)
    private_file(path)
    for companion in sqlite_files(path)[1:]:
        tighten(companion)
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        _forget_deleted_content(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _forget_deleted_content(connection: sqlite3.Connection, path: Path) -> None:
    connection.execute("PRAGMA secure_delete=ON")
    (secure_delete,) = connection.execute("PRAGMA secure_delete").fetchone()
    (journal_mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
    if secure_delete != 1 or str(journal_mode).lower() not in SHREDDING_JOURNAL_MODES:
        raise UnsafeSqliteStore(
            f"{path}: secure_delete={secure_delete}, journal_mode={journal_mode}; a secret "
            f"store needs secure_delete=1 and journal_mode {' or '.join(SHREDDING_JOURNAL_MODES)}"
        )
    if str(journal_mode).lower() != "wal":
        log.warning("%s: journal_mode is %s (WAL is not available here)", path, journal_mode)


def checkpoint_wal(connection: sqlite3.Connection) -> None:
    """Copy the WAL into the database file and truncate it to zero bytes: after a delete with
    secure_delete on, the deleted bytes are then in neither file. Raises when a reader in
    another process kept the WAL from being truncated (past the connection's busy timeout)."""
    busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise UnsafeSqliteStore(
            "the WAL could not be checkpointed and truncated: another connection is reading"
        )
