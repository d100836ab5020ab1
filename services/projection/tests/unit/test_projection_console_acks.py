"""The console's acknowledgement stores (console/acks.py): the first acknowledgement of an alert
stands, acknowledgements are found by chain, and SQLite keeps them across a reopen in a file
beside the projection's."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_projection.console.acks import (
    Ack,
    AckStore,
    InMemoryAckStore,
    SqliteAckStore,
    ack_path,
    open_ack_store,
)

FIRST = Ack(
    "CHA123425000017",
    "temperature-excursion",
    "2025-03-01T10:00:00+00:00",
    "e-1",
    "HOSP-A",
    "2025-03-02T08:00:00Z",
    "logger reviewed",
)
OTHER = Ack(
    "CHA123425000018",
    "identity-mismatch",
    "2025-03-01T11:00:00+00:00",
    "e-2",
    "HOSP-C",
    "2025-03-02T09:00:00Z",
)


def exercise(store: AckStore) -> None:
    assert store.acknowledge(FIRST) == FIRST
    again = Ack(*FIRST.ref, "GMP-B", "2025-03-03T00:00:00Z", "later")
    assert store.acknowledge(again) == FIRST  # idempotent: the first stands
    store.acknowledge(OTHER)

    assert store.of_chains([FIRST.coi]) == {FIRST.ref: FIRST}
    assert store.of_chains([FIRST.coi, OTHER.coi, "CHA123425000019"]) == {
        FIRST.ref: FIRST,
        OTHER.ref: OTHER,
    }
    assert store.of_chains([]) == {}


def test_in_memory() -> None:
    exercise(InMemoryAckStore())


def test_sqlite_keeps_acknowledgements_across_a_reopen(tmp_path: Path) -> None:
    store = open_ack_store(None, tmp_path / "projection.sqlite")
    exercise(store)
    store.close()

    assert ack_path(tmp_path / "projection.sqlite") == tmp_path / "projection.sqlite.acks.sqlite"
    reopened = SqliteAckStore(tmp_path / "projection.sqlite.acks.sqlite")
    assert reopened.of_chains([FIRST.coi, OTHER.coi]) == {FIRST.ref: FIRST, OTHER.ref: OTHER}
    reopened.close()


def test_many_chains_are_looked_up_in_chunks(tmp_path: Path) -> None:
    store = SqliteAckStore(tmp_path / "acks.sqlite")
    acks = [Ack(f"CHA1234250{n:05d}", "k", "t", "e", "HOSP-A", "now") for n in range(1_200)]
    for ack in acks:
        store.acknowledge(ack)

    assert len(store.of_chains(ack.coi for ack in acks)) == 1_200
    store.close()


def test_a_store_is_required() -> None:
    with pytest.raises(ValueError, match="V2V_POSTGRES_DSN or V2V_SQLITE_PATH"):
        open_ack_store(None, None)
