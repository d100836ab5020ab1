"""The relay's durable position and chain heads on SQLite (the embedded default's store)."""

from __future__ import annotations

from pathlib import Path

from v2v_platform.consumer import SqliteConsumerStore, SqliteLedger
from v2v_platform.relay import ChainHead, SqliteRelayState


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
