"""The relay as a process: `v2v relay --spec module:attribute`.

The spec names the service's eventsourcing Application class and its event translator; the
environment says where the event store, the signing key and the broker are.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import field_validator

from v2v_platform import telemetry
from v2v_platform.config import EventStoreSettings, KafkaSettings, load_or_exit, validate_context
from v2v_platform.envelope.from_domain import EventTranslator
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.relay.publisher import KafkaPublisher, ensure_topics
from v2v_platform.relay.relay import OutboxRelay
from v2v_platform.relay.state import PostgresRelayState, RelayStateStore, SqliteRelayState

log = logging.getLogger("v2v.relay")


@dataclass(frozen=True)
class RelaySpec:
    """What a service tells the relay: its context, application class and translator."""

    context: str
    application: Callable[..., Any]
    translator: EventTranslator


class RelaySettings(KafkaSettings):
    context: str
    site_id: str
    signing_key_file: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    relay_page_size: int = 500
    span_exporter: str = "none"

    @field_validator("context")
    @classmethod
    def _known_context(cls, value: str) -> str:
        return validate_context(value)

    @field_validator("signing_key_file")
    @classmethod
    def _readable(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError("no such file")
        return value

    @property
    def event_store(self) -> EventStoreSettings:
        return EventStoreSettings(postgres_dsn=self.postgres_dsn, sqlite_path=self.sqlite_path)

    def state_store(self) -> RelayStateStore:
        name = f"{self.context}-outbox"
        if self.postgres_dsn:
            return PostgresRelayState(self.postgres_dsn, name)
        if self.sqlite_path:
            return SqliteRelayState(self.sqlite_path.with_suffix(".relay.sqlite"), name)
        raise ValueError("set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: the relay needs a durable store")


def load_spec(reference: str) -> RelaySpec:
    module_name, _, attribute = reference.partition(":")
    if not attribute:
        raise ValueError(f"relay spec {reference!r} must look like 'package.module:NAME'")
    spec = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(spec, RelaySpec):
        raise TypeError(f"{reference} is a {type(spec).__name__}, not a RelaySpec")
    return spec


@dataclass
class RelayRuntime:
    """A relay and everything it holds open; `close()` releases them in order."""

    application: Any  # kept referenced: eventsourcing closes its datastore when collected
    relay: OutboxRelay
    publisher: KafkaPublisher
    state: RelayStateStore

    def close(self) -> None:
        self.publisher.close()
        self.state.close()
        self.application.close()


def build_relay(spec: RelaySpec, settings: RelaySettings) -> RelayRuntime:
    if spec.context != settings.context:
        raise ValueError(
            f"spec is for context {spec.context!r}, V2V_CONTEXT is {settings.context!r}"
        )
    app = spec.application(env=settings.event_store.eventsourcing_env())
    topic = topic_for(settings.context)
    ensure_topics(
        settings.kafka_bootstrap,
        [topic_for(c) for c in CONTEXTS],
        settings.topic_partitions,
        settings.topic_replication_factor,
    )
    publisher = KafkaPublisher(settings.kafka_bootstrap, client_id=f"v2v-relay-{settings.context}")
    state = settings.state_store()
    relay = OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=spec.translator,
        signer=SiteSigningKey.load(settings.site_id, settings.signing_key_file),
        state=state,
        publisher=publisher,
        topic=topic,
        page_size=settings.relay_page_size,
    )
    return RelayRuntime(app, relay, publisher, state)


def run(spec_reference: str) -> None:
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current page", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    settings = load_or_exit(RelaySettings)
    telemetry.setup_tracing(f"v2v-{settings.context}-relay", settings.span_exporter)
    runtime = build_relay(load_spec(spec_reference), settings)
    log.info("relay for %s started at position %d", settings.context, runtime.state.position())
    try:
        runtime.relay.run(stop)
    finally:
        runtime.close()
        log.info("relay stopped; %d envelopes published", runtime.relay.published_total)
