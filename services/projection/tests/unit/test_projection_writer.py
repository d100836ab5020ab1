"""The writer process saves each batch with its offsets in order; a failure is raised to the
consumer (never lost) and later batches are skipped until recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_projection.store import SqliteProjectionStore
from v2v_projection.writer_process import ProcessBatchWriter, StoreWriteFailed
from v2v_testkit.synthetic.chains import generate_history


def test_batches_are_saved_in_order_by_the_writer_process(tmp_path: Path) -> None:
    path = tmp_path / "projection.sqlite"
    SqliteProjectionStore(path).close()  # the tables exist before the child opens the file
    rows = [(t, 0, o, v) for t, o, v in generate_history(3, 1).all_records()]
    writer = ProcessBatchWriter(None, path)
    try:
        writer.submit(rows[:10], {("topic", 0): 10})
        writer.submit(rows[10:], {("topic", 0): len(rows)})
        writer.submit([], {("topic", 0): len(rows) + 5})
        writer.drain()
    finally:
        writer.close()

    store = SqliteProjectionStore(path)
    assert store.count() == len(rows)
    assert [row[3] for row in store.rows()] == [row[3] for row in rows]
    assert store.offsets() == {("topic", 0): len(rows) + 5}


def test_a_writer_that_cannot_store_raises_and_recovers(tmp_path: Path) -> None:
    writer = ProcessBatchWriter(None, tmp_path / "missing-directory" / "projection.sqlite")
    try:
        writer.submit([], {("topic", 0): 1})
        with pytest.raises(StoreWriteFailed, match="writer process exited"):
            writer.drain()
        assert writer.failed
        (tmp_path / "missing-directory").mkdir()
        writer.recover()
        writer.submit([], {("topic", 0): 2})
        writer.drain()
    finally:
        writer.close()

    store = SqliteProjectionStore(tmp_path / "missing-directory" / "projection.sqlite")
    assert store.offsets() == {("topic", 0): 2}
