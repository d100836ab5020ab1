"""DIN -> COI bindings as a service learns them from verified facts (invariant I1).

A DIN names one unit of ONE patient for life. The events that bind a DIN to a COI are
intake's `UnitLabelled` and `UnitPackaged` and manufacturing's `ProductUnitsCreated` (its
product DINs, and the input DINs they were made from: outputs inherit their inputs' COI).
A service that learns them keeps one row per (DIN, COI) in its own facts store
(`BindingTable`, written in the consumer's transaction). The first binding of a DIN stands; a
binding of the same DIN to another COI marks the DIN conflicted (`DinBindings.conflict`),
logged as critical when it is learned, and every later act on that unit is refused with
reason code `identity-conflict` (`IDENTITY_CONFLICT`), recorded like the service's other
refusals. Which binding came first is the order this service learned them in (topics
interleave freely); either way the DIN is conflicted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from v2v.events.v1.envelope_pb2 import Envelope
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_platform.ids.coi import Coi
from v2v_platform.ids.din import Din
from v2v_platform.read_queries import Query

log = logging.getLogger("v2v.identity")

IDENTITY_CONFLICT = "identity-conflict"
"""The reason code of every act refused because its unit's DIN is bound to two COIs."""

UNIT_LABELLED = "v2v.intake.events.v1.UnitLabelled"
UNIT_PACKAGED = "v2v.intake.events.v1.UnitPackaged"
PRODUCTS_CREATED = "v2v.manufacturing.events.v1.ProductUnitsCreated"
BINDING_EVENTS = (UNIT_LABELLED, UNIT_PACKAGED, PRODUCTS_CREATED)


@dataclass(frozen=True)
class Binding:
    din: Din
    coi: str


def bindings_in(envelope: Envelope) -> list[Binding]:
    """The DIN -> COI bindings a (verified) envelope states; none for other events. Raises
    DecodeError or InvalidIdentifier for a malformed payload (the caller logs and skips)."""
    if envelope.event_type == UNIT_LABELLED:
        labelled = intake.UnitLabelled.FromString(envelope.payload)
        return [Binding(Din.parse(labelled.din), Coi.parse(labelled.coi).value)]
    if envelope.event_type == UNIT_PACKAGED:
        packaged = intake.UnitPackaged.FromString(envelope.payload)
        return [Binding(Din.parse(packaged.din), Coi.parse(packaged.coi).value)]
    if envelope.event_type == PRODUCTS_CREATED:
        created = manufacturing.ProductUnitsCreated.FromString(envelope.payload)
        coi = Coi.parse(created.coi).value
        texts = [*created.product_dins, *created.input_dins]
        return [Binding(Din.parse(text), coi) for text in texts]
    return []


@dataclass(frozen=True)
class DinConflict:
    """A DIN bound to more than one COI: no act on the unit may go on."""

    din: str
    cois: tuple[str, ...]
    """Every COI the DIN is bound to (as learned: the standing, first binding first; a
    service may put the COI of the unit it holds first)."""

    reason_code = IDENTITY_CONFLICT

    @property
    def explanation(self) -> str:
        return (
            f"unit {self.din} is bound to {len(self.cois)} COIs ({', '.join(self.cois)}), but a"
            " DIN names one patient for life: STOP, identity conflict, do not use this unit"
        )


@dataclass(frozen=True)
class DinBindings:
    """The COIs a DIN is bound to, as this service learned them (first first)."""

    din: str
    cois: tuple[str, ...] = ()

    @property
    def standing(self) -> str | None:
        """The first binding, which stands."""
        return self.cois[0] if self.cois else None

    @property
    def conflict(self) -> DinConflict | None:
        return DinConflict(self.din, self.cois) if len(self.cois) > 1 else None


class BindingTable:
    """The SQL of one service's DIN -> COI bindings table, written with `?` placeholders (the
    projection's `placeholder_style` makes them PostgreSQL's). One row per (DIN, COI); the
    `arrival` column numbers a DIN's COIs in the order this service learned them."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.schema = (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " din_data TEXT NOT NULL, coi TEXT NOT NULL, arrival INTEGER NOT NULL,"
            " site_id TEXT NOT NULL, event_type TEXT NOT NULL, PRIMARY KEY (din_data, coi))"
        )
        self._insert = (
            f"INSERT INTO {table} (din_data, coi, arrival, site_id, event_type)"
            f" SELECT ?, ?, COUNT(*), ?, ? FROM {table} WHERE din_data = ?"
            " ON CONFLICT (din_data, coi) DO NOTHING"
        )
        self._select = f"SELECT coi FROM {table} WHERE din_data = ? ORDER BY arrival, coi"

    def learn(self, unit_of_work: Any, sql: Callable[[str], str], envelope: Envelope) -> None:
        """Record the bindings `envelope` states (nothing for other events); log critical when
        one binds a DIN to a second COI."""
        for binding in bindings_in(envelope):
            din_data = binding.din.data
            row = (din_data, binding.coi, envelope.site_id, envelope.event_type, din_data)
            unit_of_work.execute(sql(self._insert), row)
            rows = unit_of_work.execute(sql(self._select), (din_data,)).fetchall()
            bindings = DinBindings(str(binding.din), tuple(str(coi) for (coi,) in rows))
            conflict = bindings.conflict
            if conflict is not None and binding.coi != bindings.standing:
                log.critical(
                    "identity-conflict: DIN %s is bound to COIs %s (%s by %s)",
                    binding.din,
                    ", ".join(conflict.cois),
                    envelope.event_type.rsplit(".", 1)[-1],
                    envelope.site_id,
                )

    def read(self, query: Query, din_data: str) -> DinBindings:
        """The DIN's bindings, read with the facts reader's `query` (`?` placeholders)."""
        rows = query(self._select, (din_data,))
        return DinBindings(din_data, tuple(str(row[0]) for row in rows))
