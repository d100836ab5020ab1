"""Where the two event stores live: the published application's and the unpublished records'."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from v2v_manufacturing.bootstrap import bootstrap
from v2v_manufacturing.domain.slot_booking import SlotBooking
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_testkit.manufacturing import (
    COI,
    DAY,
    FIN,
    GMP,
    HOSPITAL,
    InMemoryManufacturingFacts,
    build_app,
    declare_din_block,
    operator,
)

DSN = "postgresql://v2v:secret@db.example:5432/mfg"


def settings(
    tmp_path: Path, postgres_dsn: str | None = None, sqlite_path: Path | None = None
) -> ManufacturingSettings:
    declare_din_block(tmp_path / "pki")
    return ManufacturingSettings(
        site_id=GMP,
        fin=FIN,
        pki_dir=tmp_path / "pki",
        postgres_dsn=postgres_dsn,
        sqlite_path=sqlite_path,
    )


def test_unpublished_records_have_their_own_sqlite_file(tmp_path: Path) -> None:
    env = settings(tmp_path, sqlite_path=tmp_path / "mfg.sqlite").registers_env()
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "mfg.registers.sqlite"),
    }


def test_unpublished_records_share_the_postgres_database_in_their_own_tables(
    tmp_path: Path,
) -> None:
    given = settings(tmp_path, postgres_dsn=DSN, sqlite_path=tmp_path / "ignored.sqlite")
    assert given.registers_env() == given.event_store.eventsourcing_env()
    assert given.registers_env()["POSTGRES_DBNAME"] == "mfg"
    # eventsourcing names the PostgreSQL tables after the application: <name>_events
    app = build_app()
    try:
        assert (app.name, app.unpublished.name) == (
            "ManufacturingApplication",
            "ManufacturingRegisters",
        )
    finally:
        app.close()
        app.unpublished.close()


def test_in_memory_without_a_store(tmp_path: Path) -> None:
    assert settings(tmp_path).registers_env() == {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def test_on_sqlite_only_per_coi_events_reach_the_outbox(tmp_path: Path) -> None:
    init_pki(tmp_path / "pki", [parse_site_spec(f"{GMP}:manufacturing")])
    enrolled = InMemoryManufacturingFacts()
    enrolled.enrolled(COI, HOSPITAL)
    service = bootstrap(settings(tmp_path, sqlite_path=tmp_path / "mfg.sqlite"), facts=enrolled)
    try:
        service.app.set_slot_capacity(GMP, DAY, 2, operator())
        service.app.book_slot(COI, GMP, DAY, operator(HOSPITAL, "collection"))
        outbox = service.app.recorder.select_notifications(1, 100)
        events = [service.app.mapper.to_domain_event(n) for n in outbox]
        assert [type(e) for e in events] == [SlotBooking.Booked]
        assert len(service.unpublished.recorder.select_notifications(1, 100)) == 2
    finally:
        service.stop()
    assert (tmp_path / "mfg.sqlite").is_file() and (tmp_path / "mfg.registers.sqlite").is_file()


def test_the_fresh_apheresis_window_comes_from_the_protocol_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings(tmp_path).protocol_rules().fresh_apheresis == timedelta(hours=48)
    monkeypatch.setenv("V2V_FRESH_APHERESIS_WINDOW_HOURS", "24")
    init_pki(tmp_path / "pki", [parse_site_spec(f"{GMP}:manufacturing")])
    service = bootstrap(settings(tmp_path))
    try:
        assert service.app.rules.fresh_apheresis == timedelta(hours=24)
        assert service.app.rules.tag.startswith("v1+")  # the site changed a built-in window
    finally:
        service.stop()
