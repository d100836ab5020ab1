"""The moving parts of a service process: gRPC server, outbox relay, Kafka consumers, one stop.

Every service composes one `ServiceRuntime` instead of wiring threads itself. Loops survive a
broker or database outage (they wait with backoff and go on; nothing was committed, so nothing
is lost) and stop only when the process stops. A service's composition derives from
`RuntimeService`, which starts its gRPC API, its outbox relay and its projection consumers.

Each thread is a part of the runtime's `ServiceHealth` (`v2v_platform.health`): the relay and
the consumers report every completed cycle and every error they wait out; a part that died or
made no progress for longer than the stall bound turns gRPC health NOT_SERVING and GET /ready
503 (GET /live too when it died), with the reason naming the part.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import psycopg
from eventsourcing.persistence import OperationalError as EventStoreOperationalError
from kafka.errors import KafkaError

from v2v_platform.auth.identity import Role
from v2v_platform.auth.revocation_watch import revocations_for
from v2v_platform.auth.tls import SiteTlsFiles
from v2v_platform.checkpoints.checkpointer import DEFAULT_CHECKPOINT_INTERVAL_S
from v2v_platform.consumer import EnvelopeConsumer, PostgresConsumerStore, SqliteConsumerStore
from v2v_platform.consumer.consumer import Apply, ConsumerStore
from v2v_platform.envelope.headers import topic_for
from v2v_platform.grpc_service import RunningServer, build_server, revocation_problems
from v2v_platform.health import (
    DEFAULT_STALL_AFTER_S,
    Heartbeat,
    Part,
    PartStopped,
    ServiceHealth,
    describe_error,
    stall_bound,
)
from v2v_platform.health_http import add_health_routes
from v2v_platform.kafka_security import KafkaSecurityConfig, client_options, security_fields
from v2v_platform.read_queries import Query, for_postgres, postgres_query, sqlite_query
from v2v_platform.relay.process import RelayRuntime, RelaySettings, RelaySpec, build_relay

log = logging.getLogger(__name__)
TRANSIENT = (KafkaError, psycopg.OperationalError, EventStoreOperationalError)
FactsT = TypeVar("FactsT")
NoneT = TypeVar("NoneT")


class PublishingSettings(KafkaSecurityConfig, Protocol):
    """What a service's settings say about where it publishes (its relay's settings) and how
    its Kafka clients authenticate (V2V_KAFKA_SECURITY_PROTOCOL, ...)."""

    site_id: str
    kafka_bootstrap: str | None
    postgres_dsn: str | None
    sqlite_path: Path | None
    topic_partitions: int
    topic_replication_factor: int

    @property
    def signing_key(self) -> Path: ...

    def side_sqlite_path(self, suffix: str) -> Path | None: ...


def relay_settings_for(context: str, settings: PublishingSettings) -> RelaySettings:
    if not settings.kafka_bootstrap:
        raise ValueError("V2V_KAFKA_BOOTSTRAP is not set: the relay and consumers need Kafka")
    return RelaySettings(
        context=context,
        site_id=settings.site_id,
        signing_key_file=settings.signing_key,
        kafka_bootstrap=settings.kafka_bootstrap,
        postgres_dsn=settings.postgres_dsn,
        sqlite_path=settings.sqlite_path,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # V2V_CHECKPOINT_INTERVAL_S as the service's settings read it (PublishingServiceSettings)
        checkpoint_interval_s=getattr(
            settings, "checkpoint_interval_s", DEFAULT_CHECKPOINT_INTERVAL_S
        ),
        **security_fields(settings),
    )


class ServiceRuntime:
    def __init__(
        self,
        context: str,
        site_id: str,
        pki_dir: Path,
        *,
        stall_after_s: float = DEFAULT_STALL_AFTER_S,
        health_interval_s: float = 1.0,
    ) -> None:
        self.context = context
        self.site_id = site_id
        self.pki_dir = pki_dir
        self.stop_event = threading.Event()
        self.grpc: RunningServer | None = None
        self.health = ServiceHealth(stall_after_s)
        self.health_interval_s = health_interval_s
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []

    def start_grpc(
        self,
        *,
        required_roles: Mapping[str, frozenset[Role]],
        register: Callable[[Any], None],
        service_names: Iterable[str],
        address: str,
    ) -> RunningServer:
        tls = SiteTlsFiles.for_site(self.pki_dir, self.site_id)
        revocations = revocations_for(tls.ca)
        self.health.condition(lambda: revocation_problems(revocations))
        running = self.grpc = build_server(
            tls=tls,
            required_roles=required_roles,
            register=register,
            service_names=service_names,
            address=address,
            health_report=self.health.report,
        )
        self._start_thread("health", lambda: self._watch_health(running))
        return running

    def start_relay(self, spec: RelaySpec, settings: RelaySettings) -> RelayRuntime:
        runtime = build_relay(spec, settings)
        self.run_part("relay", lambda beat: runtime.relay.run(self.stop_event, heartbeat=beat))
        self.on_stop(runtime.close)
        return runtime

    def start_consumer(self, name: str, consumer: EnvelopeConsumer) -> EnvelopeConsumer:
        self.run_part(name, lambda beat: self._poll(name, consumer, beat))
        self.on_stop(consumer.close)
        return consumer

    def consumer_store(
        self,
        name: str,
        postgres_dsn: str | None,
        sqlite_path: Path | None,
        create_tables: Callable[[Any], None],
    ) -> ConsumerStore:
        """The consumer's durable store (its own tables beside the service's event store)."""
        if postgres_dsn:
            connection = psycopg.connect(postgres_dsn, autocommit=True)
            create_tables(connection)
            self.on_stop(connection.close)
            return PostgresConsumerStore(connection, name)
        if sqlite_path is None:
            raise ValueError(f"set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: {name} needs a store")
        store = SqliteConsumerStore(sqlite_path, name)
        create_tables(store.connection)
        return store

    def run_part(self, name: str, target: Callable[[Heartbeat], object]) -> Part:
        """Run `target` in thread `<context>-<name>`, a part of the health watched for
        liveness and progress: it reports each completed cycle on the heartbeat it is given."""
        part = self.health.part(name)
        self._start_thread(name, lambda: self._supervise(part, lambda: target(part)), part)
        return part

    def run_in_thread(self, name: str, target: Callable[[], object]) -> Part:
        """Run `target` in thread `<context>-<name>`, a part of the health watched for
        liveness only (it ending before the service stops makes the service unhealthy)."""
        part = self.health.part(name, watch_progress=False)
        self._start_thread(name, lambda: self._supervise(part, target), part)
        return part

    def _start_thread(
        self, name: str, target: Callable[[], None], part: Part | None = None
    ) -> None:
        thread = threading.Thread(target=target, name=f"{self.context}-{name}", daemon=True)
        if part is not None:
            part.runs_in(thread)
        thread.start()
        self._threads.append(thread)

    def _supervise(self, part: Part, target: Callable[[], object]) -> None:
        """Run a part's loop; record why it ended when it ends before the service stops (an
        unexpected error still reaches the thread's excepthook with its traceback)."""
        try:
            target()
        except PartStopped as stopped:
            part.stopped(str(stopped))  # the part logged why; no traceback for a known stop
            return
        except BaseException as error:
            part.stopped(describe_error(error))
            raise
        if not self.stop_event.is_set():
            part.stopped("it returned before the service stopped")

    def _watch_health(self, running: RunningServer) -> None:
        """Re-evaluate the health every `health_interval_s`: gRPC Watch streams and the log
        follow a change even when no probe asks."""
        while not self.stop_event.wait(self.health_interval_s):
            running.refresh_health()

    def on_stop(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def stop(self) -> None:
        self.health.stopping()
        self.stop_event.set()
        if self.grpc is not None:
            self.grpc.stop(grace_s=2.0)
        for thread in self._threads:
            thread.join(timeout=10)
        for close in reversed(self._closers):
            close()

    def _poll(
        self,
        name: str,
        consumer: EnvelopeConsumer,
        heartbeat: Heartbeat,
        max_backoff_s: float = 5.0,
    ) -> None:
        backoff, needs_rewind = 0.1, False
        while not self.stop_event.is_set():
            try:
                if needs_rewind:
                    consumer.rewind_to_committed()
                    needs_rewind = False
                consumer.poll_once(timeout_ms=200)
            except TRANSIENT as error:
                log.warning("%s waiting %.1fs after: %s", name, backoff, error)
                heartbeat.waiting(error)
                needs_rewind = True  # the failed batch must be delivered again, not skipped
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, max_backoff_s)
                continue
            heartbeat.progressed()
            backoff = 0.1


@dataclass(frozen=True)
class FactsFeed(Generic[FactsT]):
    """What a service learns from other contexts' topics, declared once in its
    `adapters/facts_projection.py`: the topics, the projection that applies their events, and
    how the application reads the result (`FactsT`, its `ports.<Context>Facts`).

    The state lives beside the service's event store: its PostgreSQL database, else a SQLite
    file `<event store>.<sqlite_suffix>.sqlite`. The consumer runs in thread
    `<context>-<name>-consumer`, group `v2v-<context>-<site>-<name>`, ledger `consumer_name`.
    """

    name: str
    contexts: tuple[str, ...]
    projection: Callable[[Callable[[str], str]], Apply]
    consumer_name: str
    sqlite_suffix: str
    create_tables: Callable[[Any], None]
    reader: Callable[[Query], FactsT]

    def sqlite_facts(self, path: Path) -> FactsT:
        return self.reader(sqlite_query(path, self.create_tables))

    def postgres_facts(self, dsn: str) -> FactsT:
        return self.reader(postgres_query(dsn, self.create_tables))

    def facts_for(self, settings: PublishingSettings, none: NoneT) -> FactsT | NoneT:
        """The facts the application reads from this feed's store (`none` without a store)."""
        if settings.postgres_dsn:
            return self.postgres_facts(settings.postgres_dsn)
        path = settings.side_sqlite_path(self.sqlite_suffix)
        return self.sqlite_facts(path) if path is not None else none


class Closable(Protocol):
    def close(self) -> None: ...


class ServiceApiModule(Protocol):
    """A service's `adapters.grpc_api` module: its gRPC service, roles and registration."""

    @property
    def SERVICE_NAME(self) -> str: ...

    @property
    def REQUIRED_ROLES(self) -> Mapping[str, frozenset[Role]]: ...

    def register(self, app: Any) -> Callable[[Any], None]: ...


class RuntimeSettings(PublishingSettings, Protocol):
    pki_dir: Path
    grpc_address: str


class RuntimeService:
    """Base of a service's composition (a dataclass with `settings` and `app`): its
    `ServiceRuntime` and the starting of its gRPC API, outbox relay and projection consumer.

    The service names its `context`, `relay_spec`, `api` (its grpc_api module) and, when it
    learns facts from other contexts, its `facts_feed` as class attributes.
    """

    context: ClassVar[str]
    relay_spec: ClassVar[RelaySpec]
    api: ServiceApiModule  # the grpc_api module (a class attribute)
    facts_feed: ClassVar[FactsFeed[Any] | None] = None
    settings: RuntimeSettings
    app: Any
    runtime: ServiceRuntime

    def __post_init__(self) -> None:
        self.runtime = ServiceRuntime(
            self.context,
            self.settings.site_id,
            self.settings.pki_dir,
            stall_after_s=stall_bound(self.settings),
        )
        http_app = getattr(self, "http_app", None)  # every service has one; test doubles may not
        if http_app is not None:
            add_health_routes(http_app, self.runtime.health)

    @property
    def grpc(self) -> RunningServer | None:
        return self.runtime.grpc

    def start_grpc(self, address: str | None = None) -> RunningServer:
        return self.runtime.start_grpc(
            required_roles=self.api.REQUIRED_ROLES,
            register=self.api.register(self.app),
            service_names=[self.api.SERVICE_NAME],
            address=address or self.settings.grpc_address,
        )

    def start_relay(self) -> RelayRuntime:
        return self.runtime.start_relay(
            self.relay_spec, relay_settings_for(self.context, self.settings)
        )

    def stop(self) -> None:
        """Stop gRPC, relay and consumers, then close the application and whatever else the
        service holds (`closing()`, in that order)."""
        self.runtime.stop()
        self.app.close()
        for part in self.closing():
            part.close()

    def closing(self) -> Iterable[Closable]:
        """The service's other stores and clients to close on stop (none by default)."""
        return ()

    def start_facts_consumer(self, group_id: str | None = None) -> EnvelopeConsumer | None:
        """Consume the `facts_feed` (None for a service that learns nothing from Kafka)."""
        feed = self.facts_feed
        if feed is None:
            return None
        return self.start_projection(
            feed.name,
            contexts=feed.contexts,
            projection=feed.projection,
            consumer_name=feed.consumer_name,
            sqlite_path=self.settings.side_sqlite_path(feed.sqlite_suffix),
            create_tables=feed.create_tables,
            group_id=group_id,
        )

    def start_projection(
        self,
        name: str,
        *,
        contexts: Iterable[str],
        projection: Callable[[Callable[[str], str]], Apply],
        consumer_name: str,
        sqlite_path: Path | None,
        create_tables: Callable[[Any], None],
        group_id: str | None = None,
    ) -> EnvelopeConsumer:
        """Consume the `contexts`' events into `projection` (built with the SQL placeholder
        style of its store: the service's PostgreSQL database, else `sqlite_path`), its state
        kept as `consumer_name`; thread `<name>-consumer`, group `v2v-<context>-<site>-<name>`.
        Every record is verified against the consortium key ring of the PKI directory (read
        again when it changes) before it is applied; what fails is quarantined. The consumer
        authenticates to the broker as the settings say (`kafka_security.client_options`)."""
        from v2v_platform.auth.tls import KEY_RING_FILE
        from v2v_platform.envelope.keys import KeyRingFile
        from v2v_platform.envelope.trust import EnvelopeGate

        gate = EnvelopeGate(KeyRingFile(self.settings.pki_dir / KEY_RING_FILE))
        consumer = EnvelopeConsumer(
            bootstrap=relay_settings_for(self.context, self.settings).kafka_bootstrap,
            group_id=group_id or f"v2v-{self.context}-{self.settings.site_id}-{name}",
            topics=[topic_for(context) for context in contexts],
            store=self.runtime.consumer_store(
                consumer_name, self.settings.postgres_dsn, sqlite_path, create_tables
            ),
            apply=projection(for_postgres if self.settings.postgres_dsn else str),
            gate=gate,
            **client_options(self.settings),
        )
        return self.runtime.start_consumer(f"{name}-consumer", consumer)
