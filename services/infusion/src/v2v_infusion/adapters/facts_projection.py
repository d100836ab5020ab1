"""Infusion's own projection of other contexts' Kafka events, and the `InfusionFacts` port
read from it. Infusion never calls those services or reads their databases.

- `v2v.manufacturing.events.v1.ProductUnitsCreated`: product units (DIN -> COI, batch, hold
  condition);
- `v2v.release.events.v1.ProvisionallyCertified`, `FinallyCertified`, `OosReleaseAccepted`,
  `BatchRejected`: one decision row per batch and decision (the status is the strongest
  decision: rejected > final > oos-accepted > provisional; released at = the earliest
  release decision);
- `v2v.release.events.v1.PostReleaseFailureRecorded`: an alert row, raised when first
  projected (redelivery keeps the first);
- `v2v.intake.events.v1.PatientEnrolled`: the COI's treating site.

Written in the consumer store's transaction (with its ledger). Every write is an upsert, so
redelivery changes nothing, and no row depends on another, so the order of arrival across
topics does not matter (a release decision may arrive before its product units).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError, Message

from v2v.events.v1.envelope_pb2 import Envelope
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.adapters import facts_sql as sql
from v2v_infusion.domain.values import ReleaseStatus
from v2v_platform.consumer import Delivered
from v2v_platform.errors import InvalidInput
from v2v_platform.ids import Coi, Din, InvalidIdentifier
from v2v_platform.proto_values import condition_from_proto, from_timestamp, optional_time

log = logging.getLogger(__name__)

CONSUMER_NAME = "infusion-facts"
Handler = Callable[[Any, Any, Envelope], None]


def stored_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utc_now() -> datetime:
    return datetime.now(UTC)


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
            _name(release.ProvisionallyCertified): (
                release.ProvisionallyCertified,
                self._provisional,
            ),
            _name(release.FinallyCertified): (release.FinallyCertified, self._final),
            _name(release.OosReleaseAccepted): (release.OosReleaseAccepted, self._oos_accepted),
            _name(release.BatchRejected): (release.BatchRejected, self._rejected),
            _name(release.PostReleaseFailureRecorded): (
                release.PostReleaseFailureRecorded,
                self._failure,
            ),
            _name(intake.PatientEnrolled): (intake.PatientEnrolled, self._enrolled),
        }

    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None:
        envelope = delivered.envelope
        known = self._handlers.get(envelope.event_type)
        if known is None:
            return
        message_class, handle = known
        try:
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
            unit_of_work.execute(self._sql(sql.UPSERT_UNIT), row)

    def _provisional(
        self, unit_of_work: Any, event: release.ProvisionallyCertified, envelope: Envelope
    ) -> None:
        decided_at = _time(event, "certified_at", envelope)
        self._decided(unit_of_work, event.batch_id, ReleaseStatus.PROVISIONAL, decided_at)

    def _final(
        self, unit_of_work: Any, event: release.FinallyCertified, envelope: Envelope
    ) -> None:
        decided_at = _time(event, "certified_at", envelope)
        self._decided(unit_of_work, event.batch_id, ReleaseStatus.FINAL, decided_at)

    def _oos_accepted(
        self, unit_of_work: Any, event: release.OosReleaseAccepted, envelope: Envelope
    ) -> None:
        decided_at = _time(event, "accepted_at", envelope)
        self._decided(unit_of_work, event.batch_id, ReleaseStatus.OOS_ACCEPTED, decided_at)

    def _rejected(
        self, unit_of_work: Any, event: release.BatchRejected, envelope: Envelope
    ) -> None:
        decided_at = _time(event, "rejected_at", envelope)
        self._decided(unit_of_work, event.batch_id, ReleaseStatus.REJECTED, decided_at)

    def _decided(
        self, unit_of_work: Any, batch_id: str, decision: ReleaseStatus, decided_at: datetime
    ) -> None:
        row = (_required("batch_id", batch_id), decision.value, stored_time(decided_at))
        unit_of_work.execute(self._sql(sql.UPSERT_DECISION), row)

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
        unit_of_work.execute(self._sql(sql.INSERT_FAILURE), row)

    def _enrolled(self, unit_of_work: Any, event: intake.PatientEnrolled, _: Envelope) -> None:
        row = (Coi.parse(event.coi).value, _required("treating_site_id", event.treating_site_id))
        unit_of_work.execute(self._sql(sql.UPSERT_TREATING_SITE), row)


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
