"""Saving consumed batches in a child process with its own database connection.

The consumer process then only polls, folds and encodes each batch's segment (see store.py):
the database work and its waiting run on another core, without sharing the GIL. The child
answers every batch in order (None = saved, else why it failed); after a failure it skips
every later batch (their offsets are past the failed one) until told to recover. Used for
PostgreSQL by the service and the benchmark; tests use the in-thread writer (writer.py).
"""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from v2v_projection.store import Offsets, Quarantined, Row, encode_segment, open_store

log = logging.getLogger("v2v.projection")
MAX_IN_FLIGHT = 4
RECOVER = "recover"


class StoreWriteFailed(RuntimeError):
    """A batch could not be stored (the fold is rebuilt and the batch consumed again)."""


def serve_writes(
    connection: Connection, postgres_dsn: str | None, sqlite_path: Path | None
) -> None:
    """The child's loop: (topics, count, offsets, quarantined) then the segment bytes, per
    batch."""
    try:
        store = open_store(postgres_dsn, sqlite_path)
    except Exception:
        log.exception("the projection writer cannot open its store")
        return  # the parent reads the end of the pipe as a failure
    failed = False
    try:
        while (header := connection.recv()) is not None:
            if header == RECOVER:
                failed = False
                continue
            topics, count, offsets, quarantined = header
            data = connection.recv_bytes()
            if failed:
                connection.send("skipped: an earlier batch failed")
                continue
            try:
                store.save_segment(topics, count, data, dict(offsets), quarantined)
            except Exception as error:
                log.exception("saving a consumed batch failed")
                failed = True
                connection.send(f"{type(error).__name__}: {error}")
            else:
                connection.send(None)
    finally:
        store.close()


class ProcessBatchWriter:
    def __init__(self, postgres_dsn: str | None, sqlite_path: Path | None = None) -> None:
        self._spec = (postgres_dsn, sqlite_path)
        self._failure: str | None = None
        self._in_flight = 0
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process: Any = context.Process(
            target=serve_writes, args=(child, *self._spec), name="projection-writer", daemon=True
        )
        self._process.start()
        child.close()
        self._in_flight = 0
        self._exited = False

    @property
    def failed(self) -> bool:
        self._collect(block=False)
        return self._failure is not None

    def submit(self, rows: list[Row], offsets: Offsets, quarantined: Quarantined = ()) -> None:
        self._collect(block=False)
        self._raise_failure()
        while self._in_flight >= MAX_IN_FLIGHT:
            self._receive()
        topics, data = encode_segment(rows) if rows else ("", b"")
        try:
            header = (topics, len(rows), list(offsets.items()), list(quarantined))
            self._connection.send(header)
            self._connection.send_bytes(data)
        except OSError as error:
            self._exited = True
            self._failure = f"the writer process exited: {error!r}"
            self._raise_failure()
        self._in_flight += 1

    def drain(self) -> None:
        self._collect(block=True)
        self._raise_failure()

    def recover(self) -> None:
        """Forget the failure; a writer process that exited is replaced by a new one."""
        self._collect(block=True)
        self._failure = None
        if not self._exited:
            self._tell(RECOVER)
        if self._exited:
            self._process.join(timeout=30)
            self._connection.close()
            self._start()

    def close(self) -> None:
        self._collect(block=True)
        if not self._exited:
            self._tell(None)
        self._process.join(timeout=30)
        self._connection.close()

    def _tell(self, message: str | None) -> None:
        try:
            self._connection.send(message)
        except OSError:
            self._exited = True

    def _collect(self, block: bool) -> None:
        while self._in_flight and (block or self._connection.poll()):
            self._receive()

    def _receive(self) -> None:
        try:
            answer = self._connection.recv()
        except (EOFError, OSError) as error:
            answer = f"the writer process exited: {error!r}"
            self._exited, self._in_flight = True, 1
        self._in_flight -= 1
        if answer is not None and self._failure is None:
            self._failure = str(answer)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise StoreWriteFailed(f"storing a consumed batch failed: {self._failure}")
