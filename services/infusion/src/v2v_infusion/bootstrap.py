"""The composition root: `bootstrap(settings, **overrides)` wires the infusion service.

Tests override parameters (clock, facts, signer store) and start only the parts they need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_infusion.adapters import grpc_api
from v2v_infusion.adapters.facts_projection import FACTS_FEED
from v2v_infusion.adapters.http_api import create_http_app
from v2v_infusion.application import InfusionApplication
from v2v_infusion.ports import InfusionFacts, NoInfusionFacts
from v2v_infusion.relay_spec import RELAY_SPEC
from v2v_infusion.settings import InfusionSettings
from v2v_infusion.unpublished_records import InfusionUnpublishedRecords
from v2v_platform.esign import ESigner, SignerStore, SqlSignerStore, open_signer_store
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import Closable, RuntimeService

FACT_TOPICS = FACTS_FEED.contexts


@dataclass
class InfusionService(RuntimeService):
    context = "infusion"
    relay_spec = RELAY_SPEC
    api = grpc_api
    facts_feed = FACTS_FEED
    settings: InfusionSettings
    app: InfusionApplication
    unpublished: InfusionUnpublishedRecords
    http_app: FastAPI
    opened: list[Closable] = field(default_factory=list)
    """What bootstrap opened besides the applications (the signer store)."""

    def closing(self) -> Iterable[Closable]:
        return (self.unpublished, *reversed(self.opened))


def bootstrap(
    settings: InfusionSettings,
    *,
    facts: InfusionFacts | None = None,
    signers: SignerStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> InfusionService:
    unpublished = InfusionUnpublishedRecords(env=settings.registers_env())
    opened: list[Closable] = []
    store = signers
    if store is None:
        store = open_signer_store(settings.postgres_dsn, settings.sqlite_path)
        if isinstance(store, SqlSignerStore):
            opened.append(store)
    app = InfusionApplication(
        env=settings.event_store.eventsourcing_env(),
        clock_skew=settings.clock_skew,
        unpublished=unpublished,
        site_id=settings.site_id,
        facts=facts or FACTS_FEED.facts_for(settings, NoInfusionFacts()),
        signer=ESigner(store, clock),
        clock=clock,
        rules=settings.protocol_rules(),
        **application_overrides,
    )
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    return InfusionService(settings, app, unpublished, create_http_app(app, verifier), opened)
