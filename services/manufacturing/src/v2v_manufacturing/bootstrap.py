"""The composition root: `bootstrap(settings, **overrides)` wires the manufacturing service.

Tests override parameters (clock, intake facts) and start only the parts they need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
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
from v2v_platform.service_runtime import RuntimeService

log = logging.getLogger("v2v.manufacturing")


@dataclass
class ManufacturingService(RuntimeService):
    context = "manufacturing"
    relay_spec = RELAY_SPEC
    api = grpc_api
    settings: ManufacturingSettings
    app: ManufacturingApplication
    registers: ManufacturingRegisters
    http_app: FastAPI

    def start_intake_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        return self.start_projection(
            "intake",
            contexts=["intake"],
            projection=IntakeProjection,
            consumer_name=CONSUMER_NAME,
            sqlite_path=self.settings.facts_sqlite_path,
            create_tables=create_tables,
            group_id=group_id,
        )

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
