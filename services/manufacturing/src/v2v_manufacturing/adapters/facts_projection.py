"""Manufacturing's own projection of intake's Kafka events (`v2v.intake.events.v1`), and of
the product units every GMP site made (`v2v.manufacturing.events.v1`): the
`ports.ManufacturingFacts` the application reads.

It keeps what receipt needs: which units were packaged for which COI and manufacturing site
(DIN, condition, stability window start), and which slots intake booked for which COI; and
what booking needs: which site enrolled (and treats) each COI's patient. The enrolling site
is the verified author of the `PatientEnrolled` envelope, and the first enrolment of a COI
stands (a later one by any site changes nothing). And which COIs each DIN is bound to (labels
and packaging at intake, product units and their inputs at manufacturing:
`v2v_platform.ids.bindings`): the first binding stands, and a unit whose DIN is bound to a
second COI is refused at receipt (`identity-conflict`); a packaged unit keeps the COI it was
first packaged for. The projection is written in the consumer
store's transaction (with its ledger), in PostgreSQL or SQLite; manufacturing never calls
intake or reads its database. The tables keep their names from before the rename, so stores
written before are read on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf.message import DecodeError

from v2v.intake.events.v1 import events_pb2 as intake
from v2v_manufacturing.domain.values import Enrolment, ExpectedUnit
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered
from v2v_platform.envelope.authorship import check_names_its_author
from v2v_platform.errors import InvalidInput
from v2v_platform.ids import Coi, Din, InvalidIdentifier
from v2v_platform.ids.bindings import BindingTable, DinConflict
from v2v_platform.proto_values import condition_from_proto, from_timestamp
from v2v_platform.read_queries import Query
from v2v_platform.service_runtime import FactsFeed

log = logging.getLogger(__name__)

CONSUMER_NAME = "manufacturing-facts-v3"
"""v2 since the enrolments are learned (issue 13), v3 since the DIN bindings are, from
manufacturing's topic too (issue 14): a new ledger and consumer group, so a store made before
reads both topics once more from their start and learns the bindings of units labelled and
made before the upgrade (every other fact here is an upsert or keeps its first row: replaying
it is harmless)."""
BINDINGS = BindingTable("mfg_din_bindings")
UNIT_PACKAGED = "v2v.intake.events.v1.UnitPackaged"
SLOT_BOOKED = "v2v.intake.events.v1.SlotBooked"
PATIENT_ENROLLED = "v2v.intake.events.v1.PatientEnrolled"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mfg_intake_packaged_units ("
    " din_data TEXT PRIMARY KEY, din TEXT NOT NULL, coi TEXT NOT NULL, condition TEXT NOT NULL,"
    " window_starts_at TEXT NOT NULL, manufacturing_site_id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS mfg_intake_booked_slots ("
    " slot_id TEXT PRIMARY KEY, coi TEXT NOT NULL, manufacturing_site_id TEXT NOT NULL,"
    " slot_date TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS mfg_intake_enrolments ("
    " coi TEXT PRIMARY KEY, enrolling_site_id TEXT NOT NULL, treating_site_id TEXT NOT NULL)",
    BINDINGS.schema,
)
UPSERT_UNIT = (  # the first COI a unit was packaged for stands (a second one is a conflict)
    "INSERT INTO mfg_intake_packaged_units VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (din_data)"
    " DO UPDATE SET din = excluded.din, condition = excluded.condition,"
    " window_starts_at = excluded.window_starts_at,"
    " manufacturing_site_id = excluded.manufacturing_site_id"
    " WHERE mfg_intake_packaged_units.coi = excluded.coi"
)
UPSERT_SLOT = (
    "INSERT INTO mfg_intake_booked_slots VALUES (?, ?, ?, ?) ON CONFLICT (slot_id)"
    " DO UPDATE SET coi = excluded.coi, manufacturing_site_id = excluded.manufacturing_site_id,"
    " slot_date = excluded.slot_date"
)
INSERT_ENROLMENT = "INSERT INTO mfg_intake_enrolments VALUES (?, ?, ?) ON CONFLICT (coi) DO NOTHING"
SELECT_UNIT = (
    "SELECT din, coi, condition, window_starts_at, manufacturing_site_id"
    " FROM mfg_intake_packaged_units WHERE din_data = ?"
)
SELECT_UNITS_FOR_COI = (
    "SELECT din, coi, condition, window_starts_at, manufacturing_site_id"
    " FROM mfg_intake_packaged_units WHERE coi = ? ORDER BY din_data"
)
SELECT_SLOTS = (
    "SELECT slot_id FROM mfg_intake_booked_slots WHERE coi = ? AND manufacturing_site_id = ?"
    " ORDER BY slot_id"
)
SELECT_ENROLMENT = (
    "SELECT enrolling_site_id, treating_site_id FROM mfg_intake_enrolments WHERE coi = ?"
)


class FactsProjection:
    """The consumer's `apply`: folds one intake envelope into the tables, in the open txn."""

    def __init__(self, placeholder_style: Callable[[str], str] = str) -> None:
        self._sql = placeholder_style

    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None:
        envelope = delivered.envelope
        try:
            BINDINGS.learn(unit_of_work, self._sql, envelope)
            if envelope.event_type == UNIT_PACKAGED:
                self._unit_packaged(unit_of_work, intake.UnitPackaged.FromString(envelope.payload))
            elif envelope.event_type == SLOT_BOOKED:
                self._slot_booked(unit_of_work, intake.SlotBooked.FromString(envelope.payload))
            elif envelope.event_type == PATIENT_ENROLLED:
                event = intake.PatientEnrolled.FromString(envelope.payload)
                self._enrolled(unit_of_work, event, envelope.site_id)
        except (DecodeError, InvalidIdentifier, InvalidInput) as error:
            log.warning("skipped %s at %s: %s", envelope.event_type, delivered.location, error)

    def _unit_packaged(self, unit_of_work: Any, event: intake.UnitPackaged) -> None:
        din = Din.parse(event.din)
        row = (
            din.data,
            str(din),
            Coi.parse(event.coi).value,
            condition_from_proto(event.condition).value,
            from_timestamp(event.window_starts_at).isoformat(),
            event.manufacturing_site_id,
        )
        unit_of_work.execute(self._sql(UPSERT_UNIT), row)

    def _slot_booked(self, unit_of_work: Any, event: intake.SlotBooked) -> None:
        coi = Coi.parse(event.coi).value
        row = (event.slot_id, coi, event.manufacturing_site_id, event.slot_date)
        unit_of_work.execute(self._sql(UPSERT_SLOT), row)

    def _enrolled(self, unit_of_work: Any, event: intake.PatientEnrolled, author: str) -> None:
        """The enrolling site is the envelope's verified author; a payload naming another
        enrolling site is skipped (a claim its signer cannot make)."""
        coi = Coi.parse(event.coi).value
        check_names_its_author(f"enrolment of {coi}", event.enrolling_site_id, author)
        row = (coi, author, event.treating_site_id or author)
        unit_of_work.execute(self._sql(INSERT_ENROLMENT), row)


def create_tables(connection: Any) -> None:
    for statement in SCHEMA:
        connection.execute(statement)


class SqlManufacturingFacts:
    """The application's `ManufacturingFacts` port, read from the projection's tables."""

    def __init__(self, query: Query) -> None:
        self._query = query

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None:
        rows = self._query(SELECT_UNIT, (din_data,))
        if not rows:
            return None
        din, coi, condition, window_starts_at, site = rows[0]
        bound = BINDINGS.read(self._query, din_data).cois
        return ExpectedUnit(
            din,
            coi,
            Condition(condition),
            datetime.fromisoformat(window_starts_at),
            site,
            tuple(other for other in bound if other != coi),
        )

    def identity_conflict(self, din_data: str) -> DinConflict | None:
        return BINDINGS.read(self._query, din_data).conflict

    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]:
        return [row[0] for row in self._query(SELECT_SLOTS, (coi, manufacturing_site_id))]

    def units_for(self, coi: str) -> list[ExpectedUnit]:
        return [
            ExpectedUnit(din, unit_coi, Condition(condition), datetime.fromisoformat(start), site)
            for din, unit_coi, condition, start, site in self._query(SELECT_UNITS_FOR_COI, (coi,))
        ]

    def enrolment(self, coi: str) -> Enrolment | None:
        rows = self._query(SELECT_ENROLMENT, (coi,))
        if not rows:
            return None
        enrolling_site_id, treating_site_id = rows[0]
        return Enrolment(coi, str(enrolling_site_id), str(treating_site_id))


FACTS_FEED = FactsFeed(
    name="facts-v3",
    contexts=("intake", "manufacturing"),
    projection=FactsProjection,
    consumer_name=CONSUMER_NAME,
    sqlite_suffix="intake-facts",
    create_tables=create_tables,
    reader=SqlManufacturingFacts,
)
"""The consumer of other contexts' events behind `ports`' facts (started by the service)."""
