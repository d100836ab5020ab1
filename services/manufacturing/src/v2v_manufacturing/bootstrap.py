"""The composition root: `bootstrap(settings, **overrides)` wires the manufacturing service.

Tests override parameters (clock, facts) and start only the parts they need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_manufacturing.adapters import grpc_api
from v2v_manufacturing.adapters.facts_projection import (
    CONSUMER_NAME,
    FactsProjection,
    create_tables,
    postgres_facts,
    sqlite_facts,
)
from v2v_manufacturing.adapters.http_api import create_http_app
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.ports import ManufacturingFacts, NoManufacturingFacts
from v2v_manufacturing.relay_spec import RELAY_SPEC
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_manufacturing.unpublished_records import ManufacturingUnpublishedRecords
from v2v_platform.consumer import EnvelopeConsumer
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import RuntimeService

log = logging.getLogger("v2v.manufacturing")


@dataclass
class ManufacturingService(RuntimeService):
    context = "manufacturing"
    relay_spec = RELAY_SPEC
    api = grpc_api
    settings: ManufacturingSettings
    app: ManufacturingApplication
    unpublished: ManufacturingUnpublishedRecords
    http_app: FastAPI

    def start_facts_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        """Intake's events into the facts the application reads (`ports.ManufacturingFacts`);
        named "intake" as before, so its consumer group and thread keep their names."""
        return self.start_projection(
            "intake",
            contexts=["intake"],
            projection=FactsProjection,
            consumer_name=CONSUMER_NAME,
            sqlite_path=self.settings.facts_sqlite_path,
            create_tables=create_tables,
            group_id=group_id,
        )

    def stop(self) -> None:
        self.runtime.stop()
        self.app.close()
        self.unpublished.close()


def facts_for(settings: ManufacturingSettings) -> ManufacturingFacts:
    if settings.postgres_dsn:
        return postgres_facts(settings.postgres_dsn)
    if settings.facts_sqlite_path is not None:
        return sqlite_facts(settings.facts_sqlite_path)
    return NoManufacturingFacts()


def bootstrap(
    settings: ManufacturingSettings,
    *,
    facts: ManufacturingFacts | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> ManufacturingService:
    unpublished = ManufacturingUnpublishedRecords(env=settings.registers_env())
    app = ManufacturingApplication(
        env=settings.event_store.eventsourcing_env(),
        site_id=settings.site_id,
        unpublished=unpublished,
        facts=facts or facts_for(settings),
        clock=clock,
        fin=settings.fin,
        rules=settings.protocol_rules(),
        **application_overrides,
    )
    return ManufacturingService(settings, app, unpublished, create_http_app(app, settings.pki_dir))
