"""The composition root: `bootstrap(settings, **overrides)` wires the logistics service.

Tests override parameters (clock, facts, unit identities, courier tokens) and start only what
they need. Without given facts, the facts projection answers both `facts` and `identities`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_logistics.adapters import grpc_api
from v2v_logistics.adapters.courier_shipment_index import EventStoreCourierShipmentIndex
from v2v_logistics.adapters.courier_tokens import CourierTokens, postgres_tokens, sqlite_tokens
from v2v_logistics.adapters.facts_projection import FACTS_FEED
from v2v_logistics.adapters.http_api import create_http_app
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.ports import LogisticsFacts, NoLogisticsFacts, UnitIdentities
from v2v_logistics.relay_spec import RELAY_SPEC
from v2v_logistics.settings import LogisticsSettings
from v2v_logistics.unpublished_records import LogisticsUnpublishedRecords
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import Closable, RuntimeService


@dataclass
class LogisticsService(RuntimeService):
    context = "logistics"
    relay_spec = RELAY_SPEC
    api = grpc_api
    facts_feed = FACTS_FEED
    settings: LogisticsSettings
    app: LogisticsApplication
    unpublished: LogisticsUnpublishedRecords
    tokens: CourierTokens
    http_app: FastAPI

    def closing(self) -> Iterable[Closable]:
        return (self.unpublished,)


def courier_tokens_for(settings: LogisticsSettings) -> CourierTokens:
    """Durable with PostgreSQL or SQLite; in memory only when neither is configured."""
    lifetime = settings.courier_token_lifetime
    if settings.postgres_dsn:
        return postgres_tokens(settings.postgres_dsn, lifetime)
    return sqlite_tokens(settings.side_sqlite_path("courier-tokens") or ":memory:", lifetime)


def bootstrap(
    settings: LogisticsSettings,
    *,
    facts: LogisticsFacts | None = None,
    identities: UnitIdentities | None = None,
    tokens: CourierTokens | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> LogisticsService:
    unpublished = LogisticsUnpublishedRecords(env=settings.registers_env())
    courier_tokens = tokens or courier_tokens_for(settings)
    projected = FACTS_FEED.facts_for(settings, None) if facts is None else None
    app = LogisticsApplication(
        env=settings.event_store.eventsourcing_env(),
        clock_skew=settings.clock_skew,
        site_id=settings.site_id,
        unpublished=unpublished,
        facts=facts or projected or NoLogisticsFacts(),
        identities=identities or projected,
        clock=clock,
        rules=settings.protocol_rules(),
        courier_index=EventStoreCourierShipmentIndex,
        couriers=courier_tokens,
        **application_overrides,
    )
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    http_app = create_http_app(app, verifier, courier_tokens)
    return LogisticsService(settings, app, unpublished, courier_tokens, http_app)
