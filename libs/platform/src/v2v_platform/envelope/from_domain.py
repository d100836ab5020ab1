"""Building envelope content from eventsourcing domain events.

A service's stored domain events carry who/where/why (I7) as plain attributes: ``coi``,
``actor`` (a mapping with user_id, printed_name, role), ``site_id``, ``reason`` and optionally
``signature_meaning``, ``occurred_at`` and ``traceparent``. The service supplies one function
per event class that turns the event into its protobuf payload; everything else is common.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.message import Message

from v2v_platform.envelope.codec import Actor, EnvelopeContent
from v2v_platform.ids import Coi, InvalidIdentifier

PayloadMapper = Callable[[Any], Message]


class DomainEventLike(Protocol):
    @property
    def originator_id(self) -> Any: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...


class NotPublishable(ValueError):
    """A stored event lacks what every published event must carry."""


@dataclass(frozen=True)
class OutboundEvent:
    content: EnvelopeContent
    traceparent: str | None = None


def aggregate_type_of(event: object) -> str:
    """``Patient`` for an event class ``Patient.Enrolled``; the class name otherwise."""
    return type(event).__qualname__.split(".", 1)[0]


def schema_version_of(event: object) -> int:
    version = getattr(type(event), "class_version", 1)
    return int(version)


def actor_from(value: object) -> Actor:
    if isinstance(value, Actor):
        return value
    if isinstance(value, Mapping):
        try:
            return Actor(str(value["user_id"]), str(value["printed_name"]), str(value["role"]))
        except KeyError as missing:
            raise NotPublishable(f"actor lacks {missing.args[0]!r}") from None
    raise NotPublishable(f"actor must be a mapping or Actor, got {type(value).__name__}")


def content_from_domain_event(
    event: DomainEventLike,
    payload: Message,
    *,
    coi: str,
    actor: Actor,
    site_id: str,
    reason: str = "",
    signature_meaning: str = "",
    occurred_at: datetime | None = None,
) -> EnvelopeContent:
    """An envelope's content from a domain event plus who, where and why."""
    return EnvelopeContent(
        coi=coi,
        aggregate_type=aggregate_type_of(event),
        aggregate_id=str(event.originator_id),
        aggregate_version=event.originator_version,
        payload=payload,
        schema_version=schema_version_of(event),
        recorded_at=event.timestamp,
        site_id=site_id,
        actor=actor,
        reason=reason,
        signature_meaning=signature_meaning,
        occurred_at=occurred_at,
    )


def _valid_coi(event: object) -> str:
    """Every published event belongs to one chain of identity: its COI is the Kafka key."""
    coi = str(_required(event, "coi"))
    try:
        return str(Coi.parse(coi))
    except InvalidIdentifier as error:
        raise NotPublishable(
            f"{type(event).__qualname__} cannot be published without a valid COI: {error}"
        ) from None


def _required(event: object, name: str) -> Any:
    if not hasattr(event, name):
        raise NotPublishable(f"{type(event).__qualname__} has no {name!r} attribute")
    return getattr(event, name)


class AttributedEventTranslator:
    """Translates attributed domain events with a payload mapper per event class.

    Event classes without a mapper are internal and are not published (returns None).
    """

    def __init__(self, payload_mappers: Mapping[type, PayloadMapper]) -> None:
        self._mappers = dict(payload_mappers)

    def translate(self, event: DomainEventLike) -> OutboundEvent | None:
        mapper = self._mappers.get(type(event))
        if mapper is None:
            return None
        content = content_from_domain_event(
            event,
            mapper(event),
            coi=_valid_coi(event),
            actor=actor_from(_required(event, "actor")),
            site_id=str(_required(event, "site_id")),
            reason=str(getattr(event, "reason", "") or ""),
            signature_meaning=str(getattr(event, "signature_meaning", "") or ""),
            occurred_at=getattr(event, "occurred_at", None),
        )
        return OutboundEvent(content, getattr(event, "traceparent", None))


class EventTranslator(Protocol):
    def translate(self, event: Any) -> OutboundEvent | None: ...
