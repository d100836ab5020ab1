"""The relay's durable position, chain heads and checkpoints on SQLite (the embedded default's
store)."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from v2v_platform.checkpoints.envelopes import CheckpointHead
from v2v_platform.consumer import SqliteConsumerStore, SqliteLedger
from v2v_platform.relay import (
    ChainHead,
    CheckpointStateError,
    PreparedCheckpoint,
    SqliteRelayState,
)


def test_position_and_heads_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite"
    state = SqliteRelayState(path, "intake-outbox")
    assert state.position() == 0
    assert state.heads(["a"]) == {}
    state.advance(7, {"a": ChainHead(3, b"\x01" * 32), "b": ChainHead(1, b"\x02" * 32)})
    state.advance(9, {"a": ChainHead(4, b"\x03" * 32)})
    state.close()
    reopened = SqliteRelayState(path, "intake-outbox")
    assert reopened.position() == 9
    assert reopened.heads(["a", "b", "c"]) == {
        "a": ChainHead(4, b"\x03" * 32),
        "b": ChainHead(1, b"\x02" * 32),
    }
    assert SqliteRelayState(path, "other-outbox").position() == 0


def test_sqlite_ledger_keeps_highest_versions(tmp_path: Path) -> None:
    ledger = SqliteLedger.open(tmp_path / "ledger.sqlite", "projection")
    ledger.record({"a": 2, "b": 5})
    ledger.record({"a": 3})
    assert SqliteLedger.open(tmp_path / "ledger.sqlite", "projection").last_versions(
        ["a", "b", "z"]
    ) == {"a": 3, "b": 5}


def test_sqlite_consumer_store_rolls_back_with_the_ledger(tmp_path: Path) -> None:
    store = SqliteConsumerStore(tmp_path / "c.sqlite", "projection")
    store.connection.execute("CREATE TABLE seen (n INTEGER)")
    with store.transaction() as (conn, ledger):
        conn.execute("INSERT INTO seen VALUES (1)")
        ledger.record({"a": 1})
    try:
        with store.transaction() as (conn, ledger):
            conn.execute("INSERT INTO seen VALUES (2)")
            ledger.record({"a": 2})
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    with store.transaction() as (conn, ledger):
        assert ledger.last_versions(["a"]) == {"a": 1}
        assert conn.execute("SELECT count(*) FROM seen").fetchone() == (1,)


def _old_store(path: Path) -> None:
    """A relay state file as made before checkpoints (issue 15): two tables, one head."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE v2v_relay_position (relay TEXT PRIMARY KEY, position INTEGER NOT NULL);"
        "CREATE TABLE v2v_relay_chain_head (relay TEXT NOT NULL, aggregate_id TEXT NOT NULL,"
        " version INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (relay, aggregate_id));"
        "INSERT INTO v2v_relay_position VALUES ('intake-outbox', 4);"
    )
    connection.execute(
        "INSERT INTO v2v_relay_chain_head VALUES ('intake-outbox', 'a', 4, ?)", (H1,)
    )
    connection.commit()
    connection.close()


H1, H2, H3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def test_checkpoint_state_is_written_ahead_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite"
    _old_store(path)
    state = SqliteRelayState(path, "intake-outbox")  # the schema grows; nothing is lost
    assert state.position() == 4 and state.heads(["a"]) == {"a": ChainHead(4, H1)}
    assert state.changed_heads() == {"a": ChainHead(4, H1)}  # never checkpointed
    assert state.checkpoint_head() == CheckpointHead() and state.prepared_checkpoint() is None
    state.advance(6, {"b": ChainHead(1, H2)})
    first = PreparedCheckpoint(1, H3, b"envelope-1", {"a": 4, "b": 1})
    state.prepare_checkpoint(first)
    state.advance(7, {"b": ChainHead(2, H3)})  # published after the checkpoint was built
    with pytest.raises(CheckpointStateError):
        state.prepare_checkpoint(PreparedCheckpoint(2, H1, b"envelope-2", {}))
    state.close()

    reopened = SqliteRelayState(path, "intake-outbox")  # a crash before the acknowledgement
    assert reopened.prepared_checkpoint() == first
    assert reopened.checkpoint_head() == CheckpointHead()
    reopened.checkpoint_done(first)
    assert reopened.prepared_checkpoint() is None
    assert reopened.checkpoint_head() == CheckpointHead(1, H3)
    assert reopened.changed_heads() == {"b": ChainHead(2, H3)}  # moved past what it carried
    assert reopened.all_heads() == {"a": ChainHead(4, H1), "b": ChainHead(2, H3)}
    with pytest.raises(CheckpointStateError):
        reopened.checkpoint_done(first)
    reopened.advance(8, {"a": ChainHead(5, H2)})
    assert set(reopened.changed_heads()) == {"a", "b"}
    reopened.close()
    other = SqliteRelayState(path, "other-outbox")
    assert other.checkpoint_head() == CheckpointHead() and other.all_heads() == {}


def test_a_new_relay_state_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite"
    SqliteRelayState(path, "intake-outbox").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_signature_digests_are_kept_with_the_heads_and_an_old_head_has_none(
    tmp_path: Path,
) -> None:
    """Issue 15: each chain head keeps its stream's signature digest; a store made before it
    grows a nullable column, its heads having none."""
    path = tmp_path / "relay.sqlite"
    _old_store(path)
    state = SqliteRelayState(path, "intake-outbox")
    assert state.heads(["a"])["a"].signatures is None
    state.advance(6, {"b": ChainHead(1, H2, b"\x0d" * 32), "a": ChainHead(5, H3)})
    state.close()
    reopened = SqliteRelayState(path, "intake-outbox")
    expected = {"a": ChainHead(5, H3), "b": ChainHead(1, H2, b"\x0d" * 32)}
    assert reopened.heads(["a", "b"]) == reopened.all_heads() == expected
    assert reopened.changed_heads() == expected
    reopened.advance(7, {"b": ChainHead(2, H1, b"\x0e" * 32)})
    assert reopened.heads(["b"])["b"].signatures == b"\x0e" * 32
    reopened.close()
