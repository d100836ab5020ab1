"""Topic names and Kafka header names shared by every producer and consumer."""

from __future__ import annotations

CONTEXTS: tuple[str, ...] = ("intake", "manufacturing", "logistics", "release", "infusion")

HEADER_EVENT_TYPE = "v2v-event-type"
HEADER_SCHEMA_VERSION = "v2v-schema-version"
HEADER_EVENT_ID = "v2v-event-id"
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"


def topic_for(context: str) -> str:
    """The Kafka topic of a bounded context, e.g. ``v2v.intake.events.v1``."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; expected one of {', '.join(CONTEXTS)}")
    return f"v2v.{context}.events.v1"
