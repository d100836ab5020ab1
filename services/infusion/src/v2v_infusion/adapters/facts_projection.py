"""Infusion's own projection of other contexts' (and every treating site's) Kafka events
(`FactsProjection`, the consumer's `apply`), and `SqlInfusionFacts`, the application's
`ports.InfusionFacts` read from its tables (SQLite or PostgreSQL; SQL written once with `?`
placeholders). Infusion never calls those services or reads their databases.

- `v2v.manufacturing.events.v1.ProductUnitsCreated`: product units (DIN -> COI, batch, hold
  condition);
- `v2v.release.events.v1.ProvisionallyCertified`, `FinallyCertified`, `OosReleaseAccepted`,
  `BatchRejected`: one decision row per batch and decision (the status is the strongest
  decision: rejected > final > oos-accepted > provisional; released at = the earliest
  release decision);
- `v2v.release.events.v1.PostReleaseFailureRecorded`: an alert row, raised when first
  projected (redelivery keeps the first);
- `v2v.intake.events.v1.PatientEnrolled`: the COI's treating site;
- `v2v.logistics.events.v1.ShipmentDelivered`: when each unit of the manifest was delivered
  to the destination site (`received_at`, the clinical time); one row per (unit, site), the
  earliest delivery kept (a ward receipt cannot precede it);
- `v2v.infusion.events.v1.InfusionAdministered`, from every treating site (this one
  included; the site is the envelope's verified author): one row per (unit, site). A unit
  is infused once: a second site's row is logged as a critical double infusion;
- which COIs each DIN is bound to (`v2v_platform.ids.bindings`: intake's `UnitLabelled` and
  `UnitPackaged`, manufacturing's product units and their inputs): the first binding stands (a
  product unit keeps the COI it was first made for), and a DIN bound to a second COI is an
  identity conflict, logged as critical when learned: the unit is refused at receipt, the
  bedside and every other step (`identity-conflict`, `domain.site_rules`).

Written in the consumer store's transaction (with its ledger). Every write is an upsert (or
keeps its first row), so redelivery changes nothing, and no row depends on another, so the
order of arrival across topics does not matter (a release decision may arrive before its
product units; which binding of a DIN came first may differ, its conflict does not).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError, Message

from v2v.events.v1.envelope_pb2 import Envelope
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.domain.values import (
    FailureAlert,
    KnownInfusion,
    KnownProduct,
    ReleaseState,
    ReleaseStatus,
)
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered
from v2v_platform.envelope.authorship import check_names_its_author
from v2v_platform.errors import InvalidInput
from v2v_platform.ids import Coi, Din, InvalidIdentifier
from v2v_platform.ids.bindings import BINDING_EVENTS, BindingTable
from v2v_platform.proto_values import condition_from_proto, from_timestamp, optional_time
from v2v_platform.read_queries import Query
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import FactsFeed

log = logging.getLogger(__name__)

CONSUMER_NAME = "infusion-facts-v3"
"""v2 since the DIN bindings are learned, v3 since logistics' deliveries are (issue 14): a new
ledger and consumer group, so a store made before reads every topic once more from its start
and learns the bindings and deliveries of units from before the upgrade (every other row is an
upsert or keeps its first: replaying is harmless)."""
BINDINGS = BindingTable("infusion_din_bindings")
Handler = Callable[[Any, Any, Envelope], None]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS infusion_product_units ("
    " din_data TEXT PRIMARY KEY, din TEXT NOT NULL, coi TEXT NOT NULL, batch_id TEXT NOT NULL,"
    " condition TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS infusion_product_units_batch ON infusion_product_units (batch_id)",
    "CREATE TABLE IF NOT EXISTS infusion_release_decisions ("
    " batch_id TEXT NOT NULL, decision TEXT NOT NULL, decided_at TEXT NOT NULL,"
    " PRIMARY KEY (batch_id, decision))",
    "CREATE TABLE IF NOT EXISTS infusion_failures ("
    " failure_id TEXT PRIMARY KEY, coi TEXT NOT NULL, batch_id TEXT NOT NULL,"
    " product_dins TEXT NOT NULL, test TEXT NOT NULL, value TEXT NOT NULL,"
    " criterion TEXT NOT NULL, result_at TEXT NOT NULL, raised_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS infusion_failures_batch ON infusion_failures (batch_id)",
    "CREATE TABLE IF NOT EXISTS infusion_treating_sites ("
    " coi TEXT PRIMARY KEY, treating_site_id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS infusion_administrations ("
    " din_data TEXT NOT NULL, site_id TEXT NOT NULL, din TEXT NOT NULL, coi TEXT NOT NULL,"
    " administered_at TEXT NOT NULL, PRIMARY KEY (din_data, site_id))",
    "CREATE TABLE IF NOT EXISTS infusion_deliveries ("
    " din_data TEXT NOT NULL, site_id TEXT NOT NULL, delivered_at TEXT NOT NULL,"
    " PRIMARY KEY (din_data, site_id))",
    BINDINGS.schema,
)
UPSERT_UNIT = (  # the COI a product unit was first made for stands (another is a conflict)
    "INSERT INTO infusion_product_units VALUES (?, ?, ?, ?, ?) ON CONFLICT (din_data)"
    " DO UPDATE SET din = excluded.din, batch_id = excluded.batch_id,"
    " condition = excluded.condition WHERE infusion_product_units.coi = excluded.coi"
)
UPSERT_DECISION = (
    "INSERT INTO infusion_release_decisions VALUES (?, ?, ?) ON CONFLICT (batch_id, decision)"
    " DO UPDATE SET decided_at = CASE"
    " WHEN excluded.decided_at < infusion_release_decisions.decided_at"
    " THEN excluded.decided_at ELSE infusion_release_decisions.decided_at END"
)
INSERT_FAILURE = (
    "INSERT INTO infusion_failures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (failure_id) DO NOTHING"
)
INSERT_TREATING_SITE = (  # the first enrolment of a COI stands: a later one moves nothing
    "INSERT INTO infusion_treating_sites VALUES (?, ?) ON CONFLICT (coi) DO NOTHING"
)
INSERT_ADMINISTRATION = (
    "INSERT INTO infusion_administrations VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (din_data, site_id) DO NOTHING"
)
UPSERT_DELIVERY = (  # the earliest delivery of a unit to a site stands
    "INSERT INTO infusion_deliveries VALUES (?, ?, ?) ON CONFLICT (din_data, site_id)"
    " DO UPDATE SET delivered_at = excluded.delivered_at"
    " WHERE excluded.delivered_at < infusion_deliveries.delivered_at"
)
SELECT_DELIVERY = "SELECT delivered_at FROM infusion_deliveries WHERE din_data = ? AND site_id = ?"
SELECT_ADMINISTRATIONS = (
    "SELECT din, coi, site_id, administered_at FROM infusion_administrations"
    " WHERE din_data = ? ORDER BY administered_at, site_id"
)
SELECT_UNIT = "SELECT din, coi, batch_id, condition FROM infusion_product_units WHERE din_data = ?"
SELECT_BATCH_DINS = "SELECT din FROM infusion_product_units WHERE batch_id = ? ORDER BY din_data"
SELECT_DECISIONS = "SELECT decision, decided_at FROM infusion_release_decisions WHERE batch_id = ?"
FAILURE_COLUMNS = (
    "SELECT failure_id, coi, batch_id, product_dins, test, value, criterion, result_at,"
    " raised_at FROM infusion_failures"
)
SELECT_FAILURES = f"{FAILURE_COLUMNS} ORDER BY raised_at, failure_id"
SELECT_BATCH_FAILURES = f"{FAILURE_COLUMNS} WHERE batch_id = ? ORDER BY raised_at, failure_id"
SELECT_FAILURE = f"{FAILURE_COLUMNS} WHERE failure_id = ?"
SELECT_TREATING_SITE = "SELECT treating_site_id FROM infusion_treating_sites WHERE coi = ?"

STRENGTH = {
    ReleaseStatus.PROVISIONAL: 1,
    ReleaseStatus.OOS_ACCEPTED: 2,
    ReleaseStatus.FINAL: 3,
    ReleaseStatus.REJECTED: 4,
}


def create_tables(connection: Any) -> None:
    for statement in SCHEMA:
        connection.execute(statement)


def release_state(decisions: Iterable[tuple[str, str]]) -> ReleaseState:
    """The strongest decision, released at the earliest decision that released the batch."""
    made = {ReleaseStatus(decision): datetime.fromisoformat(at) for decision, at in decisions}
    if not made:
        return ReleaseState()
    status = max(made, key=STRENGTH.__getitem__)
    release_times = [at for decision, at in made.items() if decision.releases]
    return ReleaseState(status, min(release_times) if release_times else None)


DECISIONS: dict[type[Message], tuple[ReleaseStatus, str]] = {
    release.ProvisionallyCertified: (ReleaseStatus.PROVISIONAL, "certified_at"),
    release.FinallyCertified: (ReleaseStatus.FINAL, "certified_at"),
    release.OosReleaseAccepted: (ReleaseStatus.OOS_ACCEPTED, "accepted_at"),
    release.BatchRejected: (ReleaseStatus.REJECTED, "rejected_at"),
}
"""Release's decisions: the status each records and its time field."""


def stored_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class FactsProjection:
    """The consumer's `apply`: folds one envelope into the tables, in the open transaction."""

    def __init__(
        self,
        placeholder_style: Callable[[str], str] = str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sql = placeholder_style
        self._clock = clock
        self._handlers: dict[str, tuple[type[Message], Handler]] = {
            _name(manufacturing.ProductUnitsCreated): (
                manufacturing.ProductUnitsCreated,
                self._products,
            ),
            **{_name(decision): (decision, self._decided) for decision in DECISIONS},
            _name(release.PostReleaseFailureRecorded): (
                release.PostReleaseFailureRecorded,
                self._failure,
            ),
            _name(intake.PatientEnrolled): (intake.PatientEnrolled, self._enrolled),
            _name(infusion.InfusionAdministered): (
                infusion.InfusionAdministered,
                self._infused,
            ),
            _name(logistics.ShipmentDelivered): (logistics.ShipmentDelivered, self._delivered),
        }

    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None:
        envelope = delivered.envelope
        known = self._handlers.get(envelope.event_type)
        if known is None and envelope.event_type not in BINDING_EVENTS:
            return
        try:
            BINDINGS.learn(unit_of_work, self._sql, envelope)
            if known is not None:
                message_class, handle = known
                handle(unit_of_work, message_class.FromString(envelope.payload), envelope)
        except (DecodeError, InvalidIdentifier, InvalidInput) as error:
            log.warning("skipped %s at %s: %s", envelope.event_type, delivered.location, error)

    def _products(
        self, unit_of_work: Any, event: manufacturing.ProductUnitsCreated, _: Envelope
    ) -> None:
        coi = Coi.parse(event.coi).value
        condition = condition_from_proto(event.hold_condition).value
        batch_id = _required("batch_id", event.batch_id)
        for text in event.product_dins:
            din = Din.parse(text)
            row = (din.data, str(din), coi, batch_id, condition)
            unit_of_work.execute(self._sql(UPSERT_UNIT), row)

    def _decided(self, unit_of_work: Any, event: Any, envelope: Envelope) -> None:
        """One of release's `DECISIONS` about a batch."""
        decision, time_field = DECISIONS[type(event)]
        batch_id = _required("batch_id", event.batch_id)
        decided_at = stored_time(_time(event, time_field, envelope))
        unit_of_work.execute(self._sql(UPSERT_DECISION), (batch_id, decision.value, decided_at))

    def _failure(
        self, unit_of_work: Any, event: release.PostReleaseFailureRecorded, envelope: Envelope
    ) -> None:
        row = (
            _required("failure_id", event.failure_id),
            event.coi,
            _required("batch_id", event.batch_id),
            ",".join(_valid_dins(event.product_dins, event.failure_id)),
            event.test,
            event.value,
            event.criterion,
            stored_time(_time(event, "result_at", envelope)),
            stored_time(self._clock()),
        )
        unit_of_work.execute(self._sql(INSERT_FAILURE), row)

    def _enrolled(
        self, unit_of_work: Any, event: intake.PatientEnrolled, envelope: Envelope
    ) -> None:
        """Only an enrolment by its enrolling site (the envelope's verified author) counts."""
        check_names_its_author(
            f"enrolment of {event.coi}", event.enrolling_site_id, envelope.site_id
        )
        row = (Coi.parse(event.coi).value, _required("treating_site_id", event.treating_site_id))
        unit_of_work.execute(self._sql(INSERT_TREATING_SITE), row)

    def _infused(
        self, unit_of_work: Any, event: infusion.InfusionAdministered, envelope: Envelope
    ) -> None:
        """An infusion at the envelope's (verified) author site."""
        din = Din.parse(event.din)
        site_id = _required("site_id", envelope.site_id)
        administered_at = stored_time(_time(event, "administered_at", envelope))
        row = (din.data, site_id, str(din), Coi.parse(event.coi).value, administered_at)
        unit_of_work.execute(self._sql(INSERT_ADMINISTRATION), row)
        infused = unit_of_work.execute(self._sql(SELECT_ADMINISTRATIONS), (din.data,)).fetchall()
        if len(infused) > 1:
            sites = ", ".join(str(site) for _, _, site, _ in infused)
            log.critical("double-infusion: unit %s was infused at %s", din, sites)

    def _delivered(
        self, unit_of_work: Any, event: logistics.ShipmentDelivered, envelope: Envelope
    ) -> None:
        """Each unit of the manifest reached the destination site at `received_at`."""
        site_id = _required("destination_site_id", event.destination_site_id)
        delivered_at = stored_time(_time(event, "received_at", envelope))
        dins = [Din.parse(text) for text in event.manifest_dins]  # all valid, or none kept
        for din in dins:
            row = (din.data, site_id, delivered_at)
            unit_of_work.execute(self._sql(UPSERT_DELIVERY), row)


def _name(message_class: type[Message]) -> str:
    return str(message_class.DESCRIPTOR.full_name)


def _required(field: str, value: str) -> str:
    if not value.strip():
        raise InvalidInput(f"{field} is empty")
    return value.strip()


def _valid_dins(texts: Iterable[str], failure_id: str) -> list[str]:
    """The DINs a failure names (a malformed one is logged, never a reason to drop the alert:
    the batch id still blocks every unit of the batch)."""
    dins = []
    for text in texts:
        try:
            dins.append(str(Din.parse(text)))
        except InvalidIdentifier as error:
            log.warning("post-release failure %s names a malformed DIN: %s", failure_id, error)
    return dins


def _time(message: Message, field: str, envelope: Envelope) -> datetime:
    """The message's time field, or when unset the time its envelope was recorded."""
    return optional_time(message, field) or from_timestamp(envelope.recorded_at)


class SqlInfusionFacts:
    """The application's `InfusionFacts` port, read from the projection's tables."""

    def __init__(self, query: Query) -> None:
        self._query = query

    def product_unit(self, din_data: str) -> KnownProduct | None:
        rows = self._query(SELECT_UNIT, (din_data,))
        if not rows:
            return None
        din, coi, batch_id, condition = rows[0]
        bound = BINDINGS.read(self._query, din_data).cois
        others = tuple(other for other in bound if other != coi)
        return KnownProduct(din, coi, batch_id, Condition(condition), others)

    def release_of(self, batch_id: str) -> ReleaseState:
        return release_state(self._query(SELECT_DECISIONS, (batch_id,)))

    def failures_of_batch(self, batch_id: str) -> list[FailureAlert]:
        return [self._alert(row) for row in self._query(SELECT_BATCH_FAILURES, (batch_id,))]

    def failure(self, failure_id: str) -> FailureAlert | None:
        rows = self._query(SELECT_FAILURE, (failure_id,))
        return self._alert(rows[0]) if rows else None

    def failures(self) -> list[FailureAlert]:
        return [self._alert(row) for row in self._query(SELECT_FAILURES, ())]

    def treating_site_of(self, coi: str) -> str | None:
        rows = self._query(SELECT_TREATING_SITE, (coi,))
        return str(rows[0][0]) if rows else None

    def infusions_of(self, din_data: str) -> list[KnownInfusion]:
        return [
            KnownInfusion(din, coi, site_id, datetime.fromisoformat(administered_at))
            for din, coi, site_id, administered_at in self._query(
                SELECT_ADMINISTRATIONS, (din_data,)
            )
        ]

    def delivered_at(self, din_data: str, site_id: str) -> datetime | None:
        rows = self._query(SELECT_DELIVERY, (din_data, site_id))
        return datetime.fromisoformat(rows[0][0]) if rows else None

    def _alert(self, row: tuple[Any, ...]) -> FailureAlert:
        failure_id, coi, batch_id, dins, test, value, criterion, result_at, raised_at = row
        named = [din for din in dins.split(",") if din]
        of_batch = [din for (din,) in self._query(SELECT_BATCH_DINS, (batch_id,))]
        return FailureAlert(
            failure_id,
            coi,
            batch_id,
            tuple(dict.fromkeys([*named, *of_batch])),
            test,
            value,
            criterion,
            datetime.fromisoformat(result_at),
            datetime.fromisoformat(raised_at),
        )


FACTS_FEED = FactsFeed(
    name="facts-v3",
    contexts=("manufacturing", "release", "intake", "infusion", "logistics"),
    projection=FactsProjection,
    consumer_name=CONSUMER_NAME,
    sqlite_suffix="facts",
    create_tables=create_tables,
    reader=SqlInfusionFacts,
)
"""The consumer of other contexts' events behind `ports`' facts (started by the service)."""
