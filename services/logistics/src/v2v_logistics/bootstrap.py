"""The composition root: `bootstrap(settings, **overrides)` wires the logistics service.

Tests override parameters (clock, unit facts, courier tokens) and start only what they need.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from fastapi import FastAPI

from v2v_logistics.adapters import grpc_api
from v2v_logistics.adapters.courier_tokens import CourierTokens, postgres_tokens, sqlite_tokens
from v2v_logistics.adapters.http_api import create_http_app
from v2v_logistics.adapters.units_projection import (
    CONSUMER_NAME,
    UnitsProjection,
    create_tables,
    for_postgres,
    postgres_facts,
    sqlite_facts,
)
from v2v_logistics.application import LogisticsApplication, NoUnitFacts, UnitFacts, utc_now
from v2v_logistics.registers import LogisticsRegisters
from v2v_logistics.relay_spec import RELAY_SPEC
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.auth.tls import SiteTlsFiles
from v2v_platform.consumer import EnvelopeConsumer, PostgresConsumerStore, SqliteConsumerStore
from v2v_platform.consumer.consumer import ConsumerStore
from v2v_platform.envelope.headers import topic_for
from v2v_platform.grpc_service import RunningServer, build_server
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.relay.process import RelayRuntime, RelaySettings, build_relay


@dataclass
class LogisticsService:
    settings: LogisticsSettings
    app: LogisticsApplication
    registers: LogisticsRegisters
    tokens: CourierTokens
    http_app: FastAPI
    stop_event: threading.Event = field(default_factory=threading.Event)
    grpc: RunningServer | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def start_grpc(self, address: str | None = None) -> RunningServer:
        self.grpc = build_server(
            tls=SiteTlsFiles.for_site(self.settings.pki_dir, self.settings.site_id),
            required_roles=grpc_api.REQUIRED_ROLES,
            register=grpc_api.register(self.app),
            service_names=[grpc_api.SERVICE_NAME],
            address=address or self.settings.grpc_address,
        )
        return self.grpc

    def start_relay(self) -> RelayRuntime:
        runtime = build_relay(RELAY_SPEC, self._relay_settings())
        self._run_in_thread("relay", lambda: runtime.relay.run(self.stop_event))
        self.closers.append(runtime.close)
        return runtime

    def start_units_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        consumer = EnvelopeConsumer(
            bootstrap=self._kafka(),
            group_id=group_id or f"v2v-logistics-{self.settings.site_id}-units",
            topics=[topic_for("intake"), topic_for("manufacturing")],
            store=self._consumer_store(),
            apply=UnitsProjection(for_postgres if self.settings.postgres_dsn else str),
        )

        def poll() -> None:
            while not self.stop_event.is_set():
                consumer.poll_once(timeout_ms=200)

        self._run_in_thread("units-consumer", poll)
        self.closers.append(consumer.close)
        return consumer

    def stop(self) -> None:
        self.stop_event.set()
        if self.grpc is not None:
            self.grpc.stop(grace_s=2.0)
        for thread in self.threads:
            thread.join(timeout=10)
        for close in reversed(self.closers):
            close()
        self.app.close()
        self.registers.close()

    def _run_in_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"logistics-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _kafka(self) -> str:
        if not self.settings.kafka_bootstrap:
            raise ValueError("V2V_KAFKA_BOOTSTRAP is not set: the relay and consumer need Kafka")
        return self.settings.kafka_bootstrap

    def _relay_settings(self) -> RelaySettings:
        return RelaySettings(
            context="logistics",
            site_id=self.settings.site_id,
            signing_key_file=self.settings.signing_key,
            kafka_bootstrap=self._kafka(),
            postgres_dsn=self.settings.postgres_dsn,
            sqlite_path=self.settings.sqlite_path,
            topic_partitions=self.settings.topic_partitions,
            topic_replication_factor=self.settings.topic_replication_factor,
        )

    def _consumer_store(self) -> ConsumerStore:
        if self.settings.postgres_dsn:
            connection = psycopg.connect(self.settings.postgres_dsn, autocommit=True)
            create_tables(connection)
            self.closers.append(connection.close)
            return PostgresConsumerStore(connection, CONSUMER_NAME)
        path = self.settings.side_sqlite_path("unit-facts")
        if path is None:
            raise ValueError("set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: the projection needs one")
        store = SqliteConsumerStore(path, CONSUMER_NAME)
        create_tables(store.connection)
        return store


def unit_facts_for(settings: LogisticsSettings) -> UnitFacts:
    if settings.postgres_dsn:
        return postgres_facts(settings.postgres_dsn)
    path = settings.side_sqlite_path("unit-facts")
    return sqlite_facts(path) if path is not None else NoUnitFacts()


def courier_tokens_for(settings: LogisticsSettings) -> CourierTokens:
    """Durable with PostgreSQL or SQLite; in memory only when neither is configured."""
    if settings.postgres_dsn:
        return postgres_tokens(settings.postgres_dsn)
    return sqlite_tokens(settings.side_sqlite_path("courier-tokens") or ":memory:")


def bootstrap(
    settings: LogisticsSettings,
    *,
    unit_facts: UnitFacts | None = None,
    tokens: CourierTokens | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> LogisticsService:
    registers = LogisticsRegisters(env=settings.registers_env())
    app = LogisticsApplication(
        env=settings.event_store.eventsourcing_env(),
        registers=registers,
        site_id=settings.site_id,
        unit_facts=unit_facts or unit_facts_for(settings),
        clock=clock,
        rules=settings.rules,
        **application_overrides,
    )
    courier_tokens = tokens or courier_tokens_for(settings)
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    http_app = create_http_app(app, verifier, courier_tokens)
    return LogisticsService(settings, app, registers, courier_tokens, http_app)
