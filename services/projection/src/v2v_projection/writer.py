"""Saving consumed batches on a thread of their own, in order, so the consumer polls and folds
batch N+1 while the database commits batch N (psycopg waits for the database without the
GIL). At most one batch waits behind the one being saved.

Sending a batch of megabytes takes many partial socket flushes, and after each one the writer
needs the GIL back from the busy consumer thread: with CPython's default 5 ms switch interval
that wait dominates the save. `use_short_switch_interval()` (called by the service at start)
makes it 0.5 ms. (With PostgreSQL the service saves in a process of its own instead, see
writer_process.py; this in-thread writer serves SQLite and the tests.)

After a failed save every later batch is skipped (saving it would store offsets past the
failed one) until `recover()`; the failure is raised to the next `submit` or `drain`.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import Protocol

from v2v_projection.store import Offsets, ProjectionStore, Quarantined, Row

_STOP = None
SWITCH_INTERVAL_S = 0.0005
log = logging.getLogger("v2v.projection")


def use_short_switch_interval() -> None:
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))


class Writer(Protocol):
    @property
    def failed(self) -> bool: ...
    def submit(self, rows: list[Row], offsets: Offsets, quarantined: Quarantined = ()) -> None: ...

    def drain(self) -> None: ...
    def recover(self) -> None: ...
    def close(self) -> None: ...


class BatchWriter:
    def __init__(self, store: ProjectionStore) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[list[Row], Offsets, Quarantined] | None]
        self._queue = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="projection-writer", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def submit(self, rows: list[Row], offsets: Offsets, quarantined: Quarantined = ()) -> None:
        self._raise_failure()
        self._queue.put((rows, offsets, quarantined))

    def drain(self) -> None:
        """Wait until every submitted batch is saved; raise if one failed."""
        self._queue.join()
        self._raise_failure()

    def recover(self) -> None:
        """Forget a failure once the batches behind it were skipped."""
        self._queue.join()
        self._failure = None

    def close(self) -> None:
        self._queue.join()
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._failure is None:
                    self._store.save(*item)
            except Exception as error:
                log.exception("saving a consumed batch failed; later batches wait for recovery")
                self._failure = error
            finally:
                self._queue.task_done()
