"""Logistics' own projection of the units other contexts created, from Kafka only: it
implements `ports.LogisticsFacts`.

- `v2v.intake.events.v1.UnitPackaged`: an apheresis unit (DIN, COI, condition, window start =
  collection end or freeze time), first held by the packaging site (the envelope's site);
- `v2v.manufacturing.events.v1.ProductUnitsCreated`: product units (DINs, COI, hold
  condition, window start = creation time), first held by the manufacturing site.

And which COIs each DIN is bound to (`v2v_platform.ids.bindings`: intake's labels and
packaging, manufacturing's product units and their inputs), for `ports.UnitIdentities`: the
first binding stands (a known unit keeps the COI it was first learned for), and a DIN bound to
a second COI is an identity conflict, logged as critical when learned, on which no shipment
may go on (`identity-conflict`).

Written in the consumer store's transaction (with its ledger), in PostgreSQL or SQLite;
logistics never calls those services or reads their databases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf.message import DecodeError

from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_logistics.domain.values import KnownUnit, UnitKind, site_party
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered
from v2v_platform.errors import InvalidInput
from v2v_platform.ids import Coi, Din, InvalidIdentifier
from v2v_platform.ids.bindings import BindingTable, DinConflict
from v2v_platform.proto_values import condition_from_proto, from_timestamp
from v2v_platform.read_queries import Query
from v2v_platform.service_runtime import FactsFeed

log = logging.getLogger(__name__)

CONSUMER_NAME = "logistics-unit-facts-v2"
"""v2 since the DIN bindings are learned (issue 14): a new ledger and consumer group, so a store
made before reads both topics once more from their start and learns the bindings of units made
before the upgrade (the known units keep their first row: replaying them is harmless)."""
BINDINGS = BindingTable("logistics_din_bindings")
UNIT_PACKAGED = "v2v.intake.events.v1.UnitPackaged"
PRODUCTS_CREATED = "v2v.manufacturing.events.v1.ProductUnitsCreated"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS logistics_known_units ("
    " din_data TEXT PRIMARY KEY, din TEXT NOT NULL, coi TEXT NOT NULL, kind TEXT NOT NULL,"
    " condition TEXT NOT NULL, window_starts_at TEXT NOT NULL, first_custodian TEXT NOT NULL)",
    BINDINGS.schema,
)
UPSERT = (  # the COI a unit was first learned for stands (a second one is a conflict)
    "INSERT INTO logistics_known_units VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (din_data)"
    " DO UPDATE SET din = excluded.din, kind = excluded.kind,"
    " condition = excluded.condition, window_starts_at = excluded.window_starts_at,"
    " first_custodian = excluded.first_custodian"
    " WHERE logistics_known_units.coi = excluded.coi"
)
SELECT = (
    "SELECT din, coi, kind, condition, window_starts_at, first_custodian"
    " FROM logistics_known_units WHERE din_data = ?"
)


class FactsProjection:
    """The consumer's `apply`: folds one envelope into the table, in the open transaction."""

    def __init__(self, placeholder_style: Callable[[str], str] = str) -> None:
        self._sql = placeholder_style

    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None:
        envelope = delivered.envelope
        holder = site_party(envelope.site_id)
        try:
            BINDINGS.learn(unit_of_work, self._sql, envelope)
            if envelope.event_type == UNIT_PACKAGED:
                packaged = intake.UnitPackaged.FromString(envelope.payload)
                self._packaged(unit_of_work, packaged, holder)
            elif envelope.event_type == PRODUCTS_CREATED:
                created = manufacturing.ProductUnitsCreated.FromString(envelope.payload)
                self._products(unit_of_work, created, holder)
        except (DecodeError, InvalidIdentifier, InvalidInput) as error:
            log.warning("skipped %s at %s: %s", envelope.event_type, delivered.location, error)

    def _packaged(self, unit_of_work: Any, event: intake.UnitPackaged, holder: str) -> None:
        condition = condition_from_proto(event.condition)
        start = from_timestamp(event.window_starts_at)
        self._upsert(
            unit_of_work, event.din, event.coi, UnitKind.APHERESIS, condition, start, holder
        )

    def _products(
        self, unit_of_work: Any, event: manufacturing.ProductUnitsCreated, holder: str
    ) -> None:
        condition = condition_from_proto(event.hold_condition)
        start = from_timestamp(event.created_at)
        for din in event.product_dins:
            self._upsert(unit_of_work, din, event.coi, UnitKind.PRODUCT, condition, start, holder)

    def _upsert(
        self,
        unit_of_work: Any,
        din_text: str,
        coi: str,
        kind: UnitKind,
        condition: Condition,
        window_starts_at: datetime,
        holder: str,
    ) -> None:
        din = Din.parse(din_text)
        row = (
            din.data,
            str(din),
            Coi.parse(coi).value,
            kind.value,
            condition.value,
            window_starts_at.isoformat(),
            holder,
        )
        unit_of_work.execute(self._sql(UPSERT), row)


def create_tables(connection: Any) -> None:
    for statement in SCHEMA:
        connection.execute(statement)


class SqlLogisticsFacts:
    """The application's `LogisticsFacts` port, read from the projection's table."""

    def __init__(self, query: Query) -> None:
        self._query = query

    def unit(self, din_data: str) -> KnownUnit | None:
        rows = self._query(SELECT, (din_data,))
        if not rows:
            return None
        din, coi, kind, condition, start, holder = rows[0]
        return KnownUnit(
            din, coi, UnitKind(kind), Condition(condition), datetime.fromisoformat(start), holder
        )

    def identity_conflict(self, din_data: str) -> DinConflict | None:
        """`ports.UnitIdentities`: the COIs the DIN is bound to, when more than one."""
        return BINDINGS.read(self._query, din_data).conflict


FACTS_FEED = FactsFeed(
    name="facts-v2",
    contexts=("intake", "manufacturing"),
    projection=FactsProjection,
    consumer_name=CONSUMER_NAME,
    sqlite_suffix="unit-facts",
    create_tables=create_tables,
    reader=SqlLogisticsFacts,
)
"""The consumer of other contexts' events behind `ports`' facts (started by the service)."""
