"""The relay as a process: `v2v relay --spec module:attribute`.

The spec names the service's eventsourcing Application class and its event translator; the
environment says where the event store, the signing key and the broker are.

The relay wakes on writes (`relay.wake`): in the service's process by an in-process signal, on
PostgreSQL also by LISTEN on its outbox's channel (so this process wakes when the service
saves); a relay process on SQLite finds new events by its fallback poll,
V2V_RELAY_FALLBACK_POLL_S (default 1 s). V2V_RELAY_WAKE_ON_WRITE=false brings back the fixed
50 ms idle sleep.

The producer (issue 18): librdkafka (confluent-kafka, `relay.librdkafka`) by default;
V2V_RELAY_PRODUCER=kafka-python selects kafka-python's (`relay.publisher.KafkaPublisher`). Both
publish the same bytes to the same partitions with the same guarantees.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from v2v_platform import telemetry
from v2v_platform.checkpoints.checkpointer import DEFAULT_CHECKPOINT_INTERVAL_S, Checkpointer
from v2v_platform.config import (
    CheckpointSeconds,
    EventStoreSettings,
    KafkaSettings,
    load_or_exit,
    validate_context,
)
from v2v_platform.envelope.authorship import AUTHORS
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.from_domain import EventTranslator
from v2v_platform.envelope.headers import topic_for
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.kafka_security import KafkaSecurityConfig, client_options, librdkafka_options
from v2v_platform.relay.librdkafka import RdKafkaPublisher
from v2v_platform.relay.publisher import KafkaPublisher, OutboundRecord, ensure_topics
from v2v_platform.relay.relay import OutboxRelay, PublishingStopped
from v2v_platform.relay.state import PostgresRelayState, RelayStateStore, SqliteRelayState
from v2v_platform.relay.topics import V2V_TOPICS
from v2v_platform.relay.wake import DEFAULT_FALLBACK_POLL_S, PostgresWakeListener, WakeSignal

log = logging.getLogger("v2v.relay")


def relay_actor(context: str) -> Actor:
    """Who signs a context's checkpoints: the system, as that context's relay, in the role
    entitled to author the context's events."""
    role = min(role.value for role in AUTHORS[context])
    return Actor("system", f"{context} relay", role)


@dataclass(frozen=True)
class RelaySpec:
    """What a service tells the relay: its context, application class and translator."""

    context: str
    application: Callable[..., Any]
    translator: EventTranslator


RelayProducer = Literal["librdkafka", "kafka-python"]
"""V2V_RELAY_PRODUCER: the Kafka client the relay publishes with."""


class RelayPublisher(Protocol):
    """What the relay and its checkpointer publish through, and the runtime closes."""

    def publish(self, records: Sequence[OutboundRecord]) -> None: ...
    def close(self) -> None: ...


def make_publisher(
    producer: RelayProducer,
    bootstrap: str,
    client_id: str,
    security: KafkaSecurityConfig | None = None,
) -> RelayPublisher:
    """The relay's publisher on `producer`'s client, authenticated as `security` says
    (`kafka_security.client_options` for kafka-python, `librdkafka_options` for librdkafka;
    plaintext without)."""
    if producer == "kafka-python":
        options = client_options(security) if security is not None else {}
        return KafkaPublisher(bootstrap, client_id=client_id, **options)
    config = librdkafka_options(security) if security is not None else None
    return RdKafkaPublisher(bootstrap, client_id, config=config)


class RelaySettings(KafkaSettings):
    context: str
    site_id: str
    signing_key_file: Path
    postgres_dsn: str | None = None
    sqlite_path: Path | None = None
    relay_page_size: int = 500
    relay_producer: RelayProducer = "librdkafka"
    relay_wake_on_write: bool = True
    relay_fallback_poll_s: float = Field(default=DEFAULT_FALLBACK_POLL_S, gt=0, le=60)
    checkpoint_interval_s: CheckpointSeconds = DEFAULT_CHECKPOINT_INTERVAL_S
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

    @model_validator(mode="after")
    def _durable_store(self) -> RelaySettings:
        if not self.postgres_dsn and not self.sqlite_path:
            raise ValueError(
                "set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: the relay needs the service's durable"
                " event store"
            )
        return self

    @property
    def event_store(self) -> EventStoreSettings:
        return EventStoreSettings(postgres_dsn=self.postgres_dsn, sqlite_path=self.sqlite_path)

    def state_store(self) -> RelayStateStore:
        name = f"{self.context}-outbox"
        if self.postgres_dsn:
            return PostgresRelayState(self.postgres_dsn, name)
        if self.sqlite_path is None:
            raise ValueError("no durable store configured")  # prevented by _durable_store
        return SqliteRelayState(self.sqlite_path.with_suffix(".relay.sqlite"), name)


class BadRelaySpec(SystemExit):
    """The --spec reference does not name a RelaySpec (exits 2 with the reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(2)

    def __str__(self) -> str:
        return self.reason


def load_spec(reference: str) -> RelaySpec:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise BadRelaySpec(f"relay spec {reference!r} must look like 'package.module:NAME'")
    try:
        spec = getattr(importlib.import_module(module_name), attribute)
    except ImportError as error:
        raise BadRelaySpec(
            f"relay spec {reference!r}: cannot import {module_name}: {error}"
        ) from None
    except AttributeError:
        raise BadRelaySpec(f"relay spec {reference!r}: {module_name} has no {attribute}") from None
    if not isinstance(spec, RelaySpec):
        raise BadRelaySpec(f"relay spec {reference!r} is a {type(spec).__name__}, not a RelaySpec")
    return spec


@dataclass
class RelayRuntime:
    """A relay and everything it holds open; `close()` releases them in order."""

    application: Any  # kept referenced: eventsourcing closes its datastore when collected
    relay: OutboxRelay
    publisher: RelayPublisher
    state: RelayStateStore
    wake: WakeSignal | None = None

    def close(self) -> None:
        if self.wake is not None:
            self.wake.close()
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
    security = client_options(settings)
    ensure_topics(
        settings.kafka_bootstrap,
        V2V_TOPICS,
        settings.topic_partitions,
        settings.topic_replication_factor,
        **security,
    )
    publisher = make_publisher(
        settings.relay_producer,
        settings.kafka_bootstrap,
        f"v2v-relay-{settings.context}",
        settings,
    )
    state = settings.state_store()
    signer = SiteSigningKey.load(settings.site_id, settings.signing_key_file)
    checkpointer = Checkpointer(
        state=state,
        publisher=publisher,
        signer=signer,
        topic=topic,
        actor=relay_actor(settings.context),
        interval_s=settings.checkpoint_interval_s,
    )
    wake = relay_wake(app, settings)
    relay = OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=spec.translator,
        signer=signer,
        state=state,
        publisher=publisher,
        topic=topic,
        page_size=settings.relay_page_size,
        checkpointer=checkpointer,
        wake=wake,
        fallback_poll_s=settings.relay_fallback_poll_s,
    )
    return RelayRuntime(app, relay, publisher, state, wake)


def relay_wake(app: Any, settings: RelaySettings) -> WakeSignal | None:
    """The relay's wake signal (None when V2V_RELAY_WAKE_ON_WRITE is false): saves of `app`'s
    class in this process set it, and on PostgreSQL a listener on the outbox's channel."""
    if not settings.relay_wake_on_write:
        return None
    wake = WakeSignal(app.name)
    channel = getattr(app.recorder, "channel_name", None)
    how = f"saves of {app.name} in this process"
    if settings.postgres_dsn and channel:
        PostgresWakeListener(settings.postgres_dsn, str(channel), wake)
        how += f" and PostgreSQL NOTIFY {channel}"
    log.info(
        "relay for %s wakes on %s; fallback poll %gs",
        settings.context,
        how,
        settings.relay_fallback_poll_s,
    )
    return wake


def run(spec_reference: str) -> None:
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current page", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    settings = load_or_exit(RelaySettings)
    try:
        spec = load_spec(spec_reference)
    except BadRelaySpec as error:
        print(f"v2v relay: {error}", file=sys.stderr)
        raise
    telemetry.setup_tracing(f"v2v-{settings.context}-relay", settings.span_exporter)
    runtime = build_relay(spec, settings)
    log.info("relay for %s started at position %d", settings.context, runtime.state.position())
    try:
        runtime.relay.run(stop)
    except PublishingStopped:
        raise SystemExit(1) from None  # the relay logged the refused event and why
    finally:
        runtime.close()
        checkpoints = runtime.relay.checkpointer
        log.info(
            "relay stopped; %d envelopes and %d checkpoints published",
            runtime.relay.published_total,
            checkpoints.published_total if checkpoints else 0,
        )
