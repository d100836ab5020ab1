"""Release's own projection of manufacturing's and intake's Kafka events: the
`ports.ReleaseFacts` the application reads.

- `v2v.manufacturing.events.v1.BatchStarted`: the batch, its COI, site and start time (which
  decides the specification version);
- `...ProductUnitsCreated`: the product DINs and hold condition (fresh or cryo), and its
  `created_at`, the batch's harvest (in a table of its own, so a store made before harvest
  times were kept needs no migration: a batch it projected then has no harvest time);
- `...BatchFailed`: manufacturing gave the batch up (no release decision any more);
- `v2v.intake.events.v1.PatientEnrolled`: the COI's treating site (who accepts OOS product).

Written in the consumer store's transaction (with its ledger), in PostgreSQL or SQLite;
release never calls those services or reads their databases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError

from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered
from v2v_platform.envelope.authorship import check_names_its_author
from v2v_platform.errors import InvalidInput
from v2v_platform.ids import Coi, Din, InvalidIdentifier
from v2v_platform.proto_values import condition_from_proto, from_timestamp, optional_time
from v2v_platform.read_queries import Query
from v2v_platform.service_runtime import FactsFeed
from v2v_release.domain.values import BatchFact, parse_batch_id

log = logging.getLogger(__name__)

CONSUMER_NAME = "release-batch-facts"
BATCH_STARTED = "v2v.manufacturing.events.v1.BatchStarted"
PRODUCTS_CREATED = "v2v.manufacturing.events.v1.ProductUnitsCreated"
BATCH_FAILED = "v2v.manufacturing.events.v1.BatchFailed"
PATIENT_ENROLLED = "v2v.intake.events.v1.PatientEnrolled"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS release_batch_facts ("
    " batch_id TEXT PRIMARY KEY, coi TEXT NOT NULL, manufacturing_site_id TEXT NOT NULL,"
    " started_at TEXT NOT NULL, product_dins TEXT NOT NULL, hold_condition TEXT NOT NULL,"
    " failure_reason TEXT)",
    "CREATE TABLE IF NOT EXISTS release_treating_sites ("
    " coi TEXT PRIMARY KEY, treating_site_id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS release_batch_harvests ("
    " batch_id TEXT PRIMARY KEY, harvested_at TEXT NOT NULL)",
)
INSERT = "INSERT INTO release_batch_facts VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (batch_id)"
UPSERT_STARTED = (
    f"{INSERT} DO UPDATE SET coi = excluded.coi,"
    " manufacturing_site_id = excluded.manufacturing_site_id, started_at = excluded.started_at"
)
UPSERT_PRODUCTS = (
    f"{INSERT} DO UPDATE SET product_dins = excluded.product_dins,"
    " hold_condition = excluded.hold_condition"
)
UPSERT_FAILED = f"{INSERT} DO UPDATE SET failure_reason = excluded.failure_reason"
INSERT_TREATING_SITE = (  # the first enrolment of a COI stands: a later one moves nothing
    "INSERT INTO release_treating_sites VALUES (?, ?) ON CONFLICT (coi) DO NOTHING"
)
UPSERT_HARVEST = (  # the first harvest of a batch stands
    "INSERT INTO release_batch_harvests VALUES (?, ?) ON CONFLICT (batch_id) DO UPDATE SET"
    " harvested_at = CASE WHEN excluded.harvested_at < release_batch_harvests.harvested_at"
    " THEN excluded.harvested_at ELSE release_batch_harvests.harvested_at END"
)
SELECT_BATCH = (
    "SELECT f.batch_id, coi, manufacturing_site_id, started_at, product_dins, hold_condition,"
    " failure_reason, h.harvested_at FROM release_batch_facts f"
    " LEFT JOIN release_batch_harvests h ON h.batch_id = f.batch_id WHERE f.batch_id = ?"
)
SELECT_TREATING_SITE = "SELECT treating_site_id FROM release_treating_sites WHERE coi = ?"


def stored_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class FactsProjection:
    """The consumer's `apply`: folds one envelope into the tables, in the open transaction."""

    def __init__(self, placeholder_style: Callable[[str], str] = str) -> None:
        self._sql = placeholder_style
        self._folds: dict[str, Callable[[Any, bytes, Any], None]] = {
            BATCH_STARTED: self._started,
            PRODUCTS_CREATED: self._products,
            BATCH_FAILED: self._failed,
            PATIENT_ENROLLED: self._enrolled,
        }

    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None:
        envelope = delivered.envelope
        fold = self._folds.get(envelope.event_type)
        if fold is None:
            return
        try:
            fold(unit_of_work, envelope.payload, envelope)
        except (DecodeError, InvalidIdentifier, InvalidInput) as error:
            log.warning("skipped %s at %s: %s", envelope.event_type, delivered.location, error)

    def _started(self, unit_of_work: Any, payload: bytes, envelope: Any) -> None:
        event = manufacturing.BatchStarted.FromString(payload)
        started_at = from_timestamp(event.started_at).isoformat()
        row = (parse_batch_id(event.batch_id), Coi.parse(event.coi).value)
        values = (*row, event.manufacturing_site_id, started_at, "", "", None)
        unit_of_work.execute(self._sql(UPSERT_STARTED), values)

    def _products(self, unit_of_work: Any, payload: bytes, envelope: Any) -> None:
        event = manufacturing.ProductUnitsCreated.FromString(payload)
        dins = ",".join(str(Din.parse(din)) for din in event.product_dins)
        held = condition_from_proto(event.hold_condition).value
        row = (parse_batch_id(event.batch_id), Coi.parse(event.coi).value)
        values = (*row, envelope.site_id, "", dins, held, None)
        unit_of_work.execute(self._sql(UPSERT_PRODUCTS), values)
        harvested = optional_time(event, "created_at") or from_timestamp(envelope.occurred_at)
        harvest = (row[0], stored_time(harvested))
        unit_of_work.execute(self._sql(UPSERT_HARVEST), harvest)

    def _failed(self, unit_of_work: Any, payload: bytes, envelope: Any) -> None:
        event = manufacturing.BatchFailed.FromString(payload)
        reason = event.failure_reason or envelope.reason or "no reason given"
        row = (parse_batch_id(event.batch_id), Coi.parse(event.coi).value)
        unit_of_work.execute(self._sql(UPSERT_FAILED), (*row, envelope.site_id, "", "", "", reason))

    def _enrolled(self, unit_of_work: Any, payload: bytes, envelope: Any) -> None:
        """Only an enrolment by its enrolling site (the envelope's verified author) counts."""
        event = intake.PatientEnrolled.FromString(payload)
        check_names_its_author(
            f"enrolment of {event.coi}", event.enrolling_site_id, envelope.site_id
        )
        row = (Coi.parse(event.coi).value, event.treating_site_id)
        unit_of_work.execute(self._sql(INSERT_TREATING_SITE), row)


def create_tables(connection: Any) -> None:
    for statement in SCHEMA:
        connection.execute(statement)


class SqlReleaseFacts:
    """The application's `ReleaseFacts` port, read from the projection's tables."""

    def __init__(self, query: Query) -> None:
        self._query = query

    def batch(self, batch_id: str) -> BatchFact | None:
        rows = self._query(SELECT_BATCH, (batch_id,))
        if not rows or not rows[0][3]:  # not started as far as release knows
            return None
        batch, coi, site, started_at, dins, held, failure_reason, harvested_at = rows[0]
        return BatchFact(
            batch,
            coi,
            site,
            datetime.fromisoformat(started_at),
            tuple(filter(None, dins.split(","))),
            Condition(held) if held else None,
            failure_reason,
            datetime.fromisoformat(harvested_at) if harvested_at else None,
        )

    def treating_site(self, coi: str) -> str | None:
        rows = self._query(SELECT_TREATING_SITE, (coi,))
        return str(rows[0][0]) if rows else None


FACTS_FEED = FactsFeed(
    name="facts",
    contexts=("manufacturing", "intake"),
    projection=FactsProjection,
    consumer_name=CONSUMER_NAME,
    sqlite_suffix="batch-facts",
    create_tables=create_tables,
    reader=SqlReleaseFacts,
)
"""The consumer of other contexts' events behind `ports`' facts (started by the service)."""
