"""The eventsourcing Application every service's published application derives from: each
atomic event store write (events + notification log = the outbox) is a span of the current
trace, so a request's trace shows its write before the relay's Kafka publish; once it committed,
the relays of this outbox in this process wake (`relay.wake.saved`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from v2v_platform import telemetry
from v2v_platform.relay import wake


class TracedApplication(Application[UUID]):
    def save(self, *objs: Any, **kwargs: Any) -> Any:
        with telemetry.store_write_span(type(self).__name__, len(objs)):
            recordings = super().save(*objs, **kwargs)
        wake.saved(self.name)
        return recordings
