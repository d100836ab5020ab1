"""Base classes of every service's domain events: each says who, where and why (I7).

Published events (`AttributedCreated`, `AttributedEvent`) belong to the aggregates of a
service's published application, whose notification log the outbox relay publishes: each
carries the valid COI of its chain, which is also its Kafka key. Local events (`LocalCreated`,
`LocalEvent`) belong to a service's internal registers application (calendars, sequences,
indexes): they are never published and carry no COI of their own.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from v2v_platform.attribution import Attribution
from v2v_platform.ids import Coi, InvalidIdentifier

EventFields = dict[str, Any]


class AttributedCreated(Aggregate.Created):
    """First event of a published aggregate, with its COI and who/where/why."""

    coi: str
    actor: dict[str, str]
    site_id: str
    reason: str
    traceparent: str | None


class AttributedEvent(Aggregate.Event):
    """A subsequent event of a published aggregate, with its COI and who/where/why."""

    coi: str
    actor: dict[str, str]
    site_id: str
    reason: str
    traceparent: str | None


class LocalCreated(Aggregate.Created):
    """First event of an internal (never published) aggregate: who/where/why, no COI."""

    actor: dict[str, str]
    site_id: str
    reason: str
    traceparent: str | None


class LocalEvent(Aggregate.Event):
    """A subsequent event of an internal (never published) aggregate: who/where/why."""

    actor: dict[str, str]
    site_id: str
    reason: str
    traceparent: str | None


class Unattributable(ValueError):
    """A published event was given no valid COI: a bug, refused before anything is stored."""


def attributed(attribution: Attribution, coi: str) -> EventFields:
    """The attribute values every published event carries: its COI and who/where/why.

    The COI is checked here, before anything is stored: an event without a valid COI has no
    Kafka key and no chain, and the relay would refuse it (stopping the outbox).
    """
    try:
        valid = Coi.parse(coi).value
    except InvalidIdentifier as error:
        raise Unattributable(f"a published event needs a valid COI: {error}") from None
    if valid != coi:
        raise Unattributable(f"a published event needs its COI exactly, not {coi!r}")
    return {"coi": coi, **attribution.event_fields()}


def local(attribution: Attribution) -> EventFields:
    """The attribute values every internal event carries: who/where/why."""
    return attribution.event_fields()
