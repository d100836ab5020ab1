"""The composition root: `bootstrap(settings, **overrides)` wires the manufacturing service.

Tests override parameters (clock, facts) and start only the parts they need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_manufacturing.adapters import grpc_api
from v2v_manufacturing.adapters.facts_projection import FACTS_FEED
from v2v_manufacturing.adapters.http_api import create_http_app
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.ports import ManufacturingFacts, NoManufacturingFacts
from v2v_manufacturing.relay_spec import RELAY_SPEC
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_manufacturing.unpublished_records import ManufacturingUnpublishedRecords
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import Closable, RuntimeService

log = logging.getLogger("v2v.manufacturing")


@dataclass
class ManufacturingService(RuntimeService):
    context = "manufacturing"
    relay_spec = RELAY_SPEC
    api = grpc_api
    facts_feed = FACTS_FEED
    settings: ManufacturingSettings
    app: ManufacturingApplication
    unpublished: ManufacturingUnpublishedRecords
    http_app: FastAPI

    def closing(self) -> Iterable[Closable]:
        return (self.unpublished,)


def bootstrap(
    settings: ManufacturingSettings,
    *,
    facts: ManufacturingFacts | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> ManufacturingService:
    unpublished = ManufacturingUnpublishedRecords(
        env=settings.registers_env(), din_block=settings.din_block()
    )
    app = ManufacturingApplication(
        env=settings.event_store.eventsourcing_env(),
        clock_skew=settings.clock_skew,
        site_id=settings.site_id,
        unpublished=unpublished,
        facts=facts or FACTS_FEED.facts_for(settings, NoManufacturingFacts()),
        clock=clock,
        fin=settings.fin,
        rules=settings.protocol_rules(),
        product_codes=settings.product_codes(),
        **application_overrides,
    )
    return ManufacturingService(settings, app, unpublished, create_http_app(app, settings.pki_dir))
