"""Where the two event stores live: the published application's and the internal registers'."""

from __future__ import annotations

from pathlib import Path

from v2v_manufacturing.bootstrap import bootstrap
from v2v_manufacturing.domain.slot_booking import SlotBooking
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_manufacturing.testing import COI, DAY, FIN, GMP, HOSPITAL, build_app, operator
from v2v_platform.auth.pki import init_pki, parse_site_spec

DSN = "postgresql://v2v:secret@db.example:5432/mfg"


def settings(
    tmp_path: Path, postgres_dsn: str | None = None, sqlite_path: Path | None = None
) -> ManufacturingSettings:
    return ManufacturingSettings(
        site_id=GMP,
        fin=FIN,
        pki_dir=tmp_path / "pki",
        postgres_dsn=postgres_dsn,
        sqlite_path=sqlite_path,
    )


def test_registers_have_their_own_sqlite_file(tmp_path: Path) -> None:
    env = settings(tmp_path, sqlite_path=tmp_path / "mfg.sqlite").registers_env()
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "mfg.registers.sqlite"),
    }


def test_registers_share_the_postgres_database_in_their_own_tables(tmp_path: Path) -> None:
    given = settings(tmp_path, postgres_dsn=DSN, sqlite_path=tmp_path / "ignored.sqlite")
    assert given.registers_env() == given.event_store.eventsourcing_env()
    assert given.registers_env()["POSTGRES_DBNAME"] == "mfg"
    # eventsourcing names the PostgreSQL tables after the application: <name>_events
    app = build_app()
    try:
        assert (app.name, app.registers.name) == (
            "ManufacturingApplication",
            "ManufacturingRegisters",
        )
    finally:
        app.close()
        app.registers.close()


def test_in_memory_without_a_store(tmp_path: Path) -> None:
    assert settings(tmp_path).registers_env() == {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def test_on_sqlite_only_per_coi_events_reach_the_outbox(tmp_path: Path) -> None:
    init_pki(tmp_path / "pki", [parse_site_spec(f"{GMP}:manufacturing")])
    service = bootstrap(settings(tmp_path, sqlite_path=tmp_path / "mfg.sqlite"))
    try:
        service.app.set_slot_capacity(GMP, DAY, 2, operator())
        service.app.book_slot(COI, GMP, DAY, operator(HOSPITAL, "collection"))
        outbox = service.app.recorder.select_notifications(1, 100)
        events = [service.app.mapper.to_domain_event(n) for n in outbox]
        assert [type(e) for e in events] == [SlotBooking.Booked]
        assert len(service.registers.recorder.select_notifications(1, 100)) == 2
    finally:
        service.stop()
    assert (tmp_path / "mfg.sqlite").is_file() and (tmp_path / "mfg.registers.sqlite").is_file()
