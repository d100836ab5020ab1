"""The composition root: `bootstrap(settings)` wires the projection core; tests start only
what they need (gRPC, consumer, alert hub) and may pass their own consumer group.

Its threads are parts of the runtime's health: the consumer reports each poll (progress) and
each error it waits out, the alert hub is watched for liveness; gRPC health, GET /ready and
GET /live tell the truth about them (`v2v_platform.health`).

Every replica is a full read replica (ADR 0011): its consumer group and store are its own
(`ProjectionSettings.group_id`, `store_dsn`, `store_sqlite_path`), and it is not ready until
its consumer caught up with every partition of the topics (`catch_up.CatchUp`, measured in
thread `projection-catch-up`, a part of the health watched for liveness)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from fastapi import FastAPI
from psycopg import sql

from v2v_platform import kafka_security
from v2v_platform.auth.tls import KEY_RING_FILE
from v2v_platform.grpc_service import RunningServer
from v2v_platform.health import Heartbeat, stall_bound
from v2v_platform.health_http import add_health_routes
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.service_runtime import TRANSIENT, ServiceRuntime
from v2v_projection.adapters import grpc_api
from v2v_projection.adapters.http_api import create_http_app
from v2v_projection.alert_watch import AlertHub
from v2v_projection.catch_up import CatchUp, KafkaEndOffsets
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.console.acks import open_ack_store
from v2v_projection.console.app import console_router
from v2v_projection.consumer import TOPICS, ProjectionConsumer
from v2v_projection.integrity import ChainIntegrity
from v2v_projection.queries import ChainQueries
from v2v_projection.settings import ProjectionSettings
from v2v_projection.store import ProjectionStore, open_store
from v2v_projection.verifier import open_verifier
from v2v_projection.writer_process import ProcessBatchWriter, StoreWriteFailed

log = logging.getLogger("v2v.projection")


@dataclass
class ProjectionService:
    settings: ProjectionSettings
    projection: ChainProjection
    queries: ChainQueries
    hub: AlertHub
    http_app: FastAPI
    integrity: ChainIntegrity
    runtime: ServiceRuntime = field(init=False)
    consumer: ProjectionConsumer | None = None
    catch_up: CatchUp | None = None

    def __post_init__(self) -> None:
        self.runtime = ServiceRuntime(
            "projection",
            self.settings.site_id,
            self.settings.pki_dir,
            stall_after_s=stall_bound(self.settings),
        )
        add_health_routes(self.http_app, self.runtime.health)
        self.runtime.on_stop(self.projection.close)
        self.runtime.on_stop(self.hub.close)

    @property
    def grpc(self) -> RunningServer | None:
        return self.runtime.grpc

    def start_grpc(self, address: str | None = None) -> RunningServer:
        return self.runtime.start_grpc(
            required_roles=grpc_api.REQUIRED_ROLES,
            register=grpc_api.register(self.queries, self.hub),
            service_names=[grpc_api.SERVICE_NAME],
            address=address or self.settings.grpc_address,
        )

    def start_consumer(self, group_id: str | None = None) -> ProjectionConsumer:
        if not self.settings.kafka_bootstrap:
            raise ValueError("V2V_KAFKA_BOOTSTRAP is not set: the projection consumes Kafka")
        options = kafka_security.librdkafka_options(self.settings)
        consumer = ProjectionConsumer(
            self.projection,
            bootstrap=self.settings.kafka_bootstrap,
            group_id=group_id or self.settings.group_id,
            topics=TOPICS,
            max_poll_records=self.settings.max_poll_records,
            client_options=options,
        )
        self.consumer = consumer
        catch_up = CatchUp(
            KafkaEndOffsets(self.settings.kafka_bootstrap, TOPICS, options),
            self.projection.offsets,
            max_lag=self.settings.catch_up_max_lag,
        )
        self.catch_up = catch_up
        self.runtime.health.condition(catch_up.problems)
        self.runtime.run_part("consumer", lambda beat: self._consume(consumer, beat))
        self.runtime.run_in_thread("catch-up", lambda: catch_up.run(self.runtime.stop_event))
        self.runtime.on_stop(consumer.close)
        return consumer

    def start_alert_hub(self, interval_s: float = 0.5) -> None:
        stop = self.runtime.stop_event
        self.runtime.run_in_thread("alerts", lambda: self.hub.run(stop, interval_s))

    def _consume(
        self, consumer: ProjectionConsumer, heartbeat: Heartbeat, max_backoff_s: float = 5.0
    ) -> None:
        stop, backoff = self.runtime.stop_event, 0.1
        while not stop.is_set():
            try:
                consumer.poll_once(timeout_ms=200)
            except (*TRANSIENT, StoreWriteFailed) as error:
                log.warning("projection consumer waiting %.1fs after: %s", backoff, error)
                heartbeat.waiting(error)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff_s)
                consumer.rewind_to_stored()
                continue
            heartbeat.progressed()
            backoff = 0.1

    def stop(self) -> None:
        self.runtime.stop()


def bootstrap(settings: ProjectionSettings, *, rebuild: bool = False) -> ProjectionService:
    """Open the store (cleared when `rebuild`) and rebuild the fold from it."""
    store = open_replica_store(settings)
    writer = ProcessBatchWriter(settings.store_dsn) if settings.store_dsn else None
    records = open_verifier(settings.pki_dir / KEY_RING_FILE, settings.verify_workers)
    projection = ChainProjection(store, writer, verifier=records)
    if rebuild:
        projection.rebuild()
        log.info("projection store cleared: consuming every topic from offset zero")
    loaded = projection.load()
    log.info("projection rebuilt from its store: %d envelopes", loaded)
    queries = ChainQueries(projection)
    hub = AlertHub(projection)
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    integrity = ChainIntegrity(queries)  # the key ring of the projection's verifier
    http_app = create_http_app(queries, verifier, integrity)
    acks = open_ack_store(settings.postgres_dsn, settings.store_sqlite_path)  # shared on PostgreSQL
    http_app.include_router(console_router(queries, hub, verifier, integrity, acks))
    service = ProjectionService(settings, projection, queries, hub, http_app, integrity)
    service.runtime.on_stop(acks.close)
    return service


def open_replica_store(settings: ProjectionSettings) -> ProjectionStore:
    """This replica's store: for replica N of a PostgreSQL store its schema (created when
    missing), for SQLite its own file (`ProjectionSettings.store_dsn`, `store_sqlite_path`)."""
    schema = settings.postgres_schema
    if settings.postgres_dsn and schema is not None:
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as connection:
            connection.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
    return open_store(settings.store_dsn, settings.store_sqlite_path)
