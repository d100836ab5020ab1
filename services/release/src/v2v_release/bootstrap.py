"""The composition root: `bootstrap(settings, **overrides)` wires the release service.

Tests override parameters (clock, facts, signer store) and start only what they need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_platform.consumer import EnvelopeConsumer
from v2v_platform.esign import SignerStore, SqlSignerStore, open_signer_store
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import RuntimeService
from v2v_release.adapters import grpc_api
from v2v_release.adapters.facts_projection import (
    CONSUMER_NAME,
    FactsProjection,
    create_tables,
    postgres_facts,
    sqlite_facts,
)
from v2v_release.adapters.http_api import create_http_app
from v2v_release.application import ReleaseApplication
from v2v_release.ports import NoReleaseFacts, ReleaseFacts
from v2v_release.relay_spec import RELAY_SPEC
from v2v_release.settings import ReleaseSettings

FACTS_SUFFIX = "batch-facts"


@dataclass
class ReleaseService(RuntimeService):
    context = "release"
    relay_spec = RELAY_SPEC
    api = grpc_api
    settings: ReleaseSettings
    app: ReleaseApplication
    signers: SignerStore
    http_app: FastAPI

    def start_facts_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        return self.start_projection(
            "facts",
            contexts=["manufacturing", "intake"],
            projection=FactsProjection,
            consumer_name=CONSUMER_NAME,
            sqlite_path=self.settings.side_sqlite_path(FACTS_SUFFIX),
            create_tables=create_tables,
            group_id=group_id,
        )

    def stop(self) -> None:
        self.runtime.stop()
        self.app.close()
        if isinstance(self.signers, SqlSignerStore):
            self.signers.close()


def facts_for(settings: ReleaseSettings) -> ReleaseFacts:
    if settings.postgres_dsn:
        return postgres_facts(settings.postgres_dsn)
    path = settings.side_sqlite_path(FACTS_SUFFIX)
    return sqlite_facts(path) if path is not None else NoReleaseFacts()


def bootstrap(
    settings: ReleaseSettings,
    *,
    facts: ReleaseFacts | None = None,
    signer_store: SignerStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> ReleaseService:
    signers = signer_store or open_signer_store(settings.postgres_dsn, settings.sqlite_path)
    app = ReleaseApplication(
        env=settings.event_store.eventsourcing_env(),
        site_id=settings.site_id,
        facts=facts or facts_for(settings),
        signer_store=signers,
        specifications=settings.specifications(),
        clock=clock,
        **application_overrides,
    )
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    return ReleaseService(settings, app, signers, create_http_app(app, verifier))
