"""The eventsourcing Application every service's published application derives from: each
atomic event store write (events + notification log = the outbox) is a span of the current
trace, so a request's trace shows its write before the relay's Kafka publish."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from v2v_platform import telemetry


class TracedApplication(Application[UUID]):
    def save(self, *objs: Any, **kwargs: Any) -> Any:
        with telemetry.store_write_span(type(self).__name__, len(objs)):
            return super().save(*objs, **kwargs)
