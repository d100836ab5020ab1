"""Base classes of the manufacturing events: every event says who, where, why (I7)."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from v2v_platform.attribution import Attribution

EventFields = dict[str, Any]


class AttributedCreated(Aggregate.Created):
    """First event of an aggregate, with the COI it belongs to and who/where/why."""

    coi: str
    actor: dict[str, str]
    site_id: str
    reason: str
    traceparent: str | None


class AttributedEvent(Aggregate.Event):
    """A subsequent event, with the COI it belongs to and who/where/why."""

    coi: str
    actor: dict[str, str]
    site_id: str
    reason: str
    traceparent: str | None


def attributed(attribution: Attribution, coi: str) -> EventFields:
    """The attribute values every event carries: its COI and `Attribution.event_fields()`."""
    return {"coi": coi, **attribution.event_fields()}
