"""The composition root: `bootstrap(settings, **overrides)` wires the manufacturing service.

Tests override parameters (clock, intake facts) and start only the parts they need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_manufacturing.adapters import grpc_api
from v2v_manufacturing.adapters.http_api import create_http_app
from v2v_manufacturing.adapters.intake_projection import (
    CONSUMER_NAME,
    IntakeProjection,
    create_tables,
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
from v2v_platform.consumer import EnvelopeConsumer
from v2v_platform.envelope.headers import topic_for
from v2v_platform.grpc_service import RunningServer
from v2v_platform.read_queries import for_postgres
from v2v_platform.relay.process import RelayRuntime
from v2v_platform.service_runtime import ServiceRuntime, relay_settings_for

log = logging.getLogger("v2v.manufacturing")


@dataclass
class ManufacturingService:
    settings: ManufacturingSettings
    app: ManufacturingApplication
    registers: ManufacturingRegisters
    http_app: FastAPI
    runtime: ServiceRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.runtime = ServiceRuntime("manufacturing", self.settings.site_id, self.settings.pki_dir)

    @property
    def grpc(self) -> RunningServer | None:
        return self.runtime.grpc

    def start_grpc(self, address: str | None = None) -> RunningServer:
        return self.runtime.start_grpc(
            required_roles=grpc_api.REQUIRED_ROLES,
            register=grpc_api.register(self.app),
            service_names=[grpc_api.SERVICE_NAME],
            address=address or self.settings.grpc_address,
        )

    def start_relay(self) -> RelayRuntime:
        return self.runtime.start_relay(
            RELAY_SPEC, relay_settings_for("manufacturing", self.settings)
        )

    def start_intake_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        store = self.runtime.consumer_store(
            CONSUMER_NAME,
            self.settings.postgres_dsn,
            self.settings.facts_sqlite_path,
            create_tables,
        )
        consumer = EnvelopeConsumer(
            bootstrap=relay_settings_for("manufacturing", self.settings).kafka_bootstrap,
            group_id=group_id or f"v2v-manufacturing-{self.settings.site_id}-intake",
            topics=[topic_for("intake")],
            store=store,
            apply=IntakeProjection(for_postgres if self.settings.postgres_dsn else str),
        )
        return self.runtime.start_consumer("intake-consumer", consumer)

    def stop(self) -> None:
        self.runtime.stop()
        self.app.close()
        self.registers.close()


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
