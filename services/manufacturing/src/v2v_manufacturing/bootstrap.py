"""The composition root: `bootstrap(settings, **overrides)` wires the manufacturing service.

Tests override parameters (clock, intake facts) and start only the parts they need.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from fastapi import FastAPI

from v2v_manufacturing.adapters import grpc_api
from v2v_manufacturing.adapters.http_api import create_http_app
from v2v_manufacturing.adapters.intake_projection import (
    CONSUMER_NAME,
    IntakeProjection,
    create_tables,
    for_postgres,
    postgres_facts,
    sqlite_facts,
)
from v2v_manufacturing.application import (
    IntakeFacts,
    ManufacturingApplication,
    NoIntakeFacts,
    utc_now,
)
from v2v_manufacturing.registers import ManufacturingRegisters
from v2v_manufacturing.relay_spec import RELAY_SPEC
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.auth.tls import SiteTlsFiles
from v2v_platform.consumer import EnvelopeConsumer, PostgresConsumerStore, SqliteConsumerStore
from v2v_platform.consumer.consumer import ConsumerStore
from v2v_platform.envelope.headers import topic_for
from v2v_platform.grpc_service import RunningServer, build_server
from v2v_platform.relay.process import RelayRuntime, RelaySettings, build_relay

log = logging.getLogger("v2v.manufacturing")


@dataclass
class ManufacturingService:
    settings: ManufacturingSettings
    app: ManufacturingApplication
    registers: ManufacturingRegisters
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

    def start_intake_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        consumer = EnvelopeConsumer(
            bootstrap=self._kafka(),
            group_id=group_id or f"v2v-manufacturing-{self.settings.site_id}-intake",
            topics=[topic_for("intake")],
            store=self._consumer_store(),
            apply=IntakeProjection(for_postgres if self.settings.postgres_dsn else str),
        )

        def poll() -> None:
            while not self.stop_event.is_set():
                consumer.poll_once(timeout_ms=200)

        self._run_in_thread("intake-consumer", poll)
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
        thread = threading.Thread(target=target, name=f"manufacturing-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _kafka(self) -> str:
        if not self.settings.kafka_bootstrap:
            raise ValueError("V2V_KAFKA_BOOTSTRAP is not set: the relay and consumer need Kafka")
        return self.settings.kafka_bootstrap

    def _relay_settings(self) -> RelaySettings:
        return RelaySettings(
            context="manufacturing",
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
        path = self.settings.facts_sqlite_path
        if path is None:
            raise ValueError("set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: the projection needs one")
        store = SqliteConsumerStore(path, CONSUMER_NAME)
        create_tables(store.connection)
        return store


def intake_facts_for(settings: ManufacturingSettings) -> IntakeFacts:
    if settings.postgres_dsn:
        return postgres_facts(settings.postgres_dsn)
    if settings.facts_sqlite_path is not None:
        return sqlite_facts(settings.facts_sqlite_path)
    return NoIntakeFacts()


def bootstrap(
    settings: ManufacturingSettings,
    *,
    intake_facts: IntakeFacts | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> ManufacturingService:
    registers = ManufacturingRegisters(env=settings.registers_env())
    app = ManufacturingApplication(
        env=settings.event_store.eventsourcing_env(),
        registers=registers,
        site_id=settings.site_id,
        intake_facts=intake_facts or intake_facts_for(settings),
        clock=clock,
        fin=settings.fin,
        fresh_window=settings.fresh_window,
        **application_overrides,
    )
    return ManufacturingService(settings, app, registers, create_http_app(app, settings.pki_dir))
