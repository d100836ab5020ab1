"""The composition root: `bootstrap(settings, **overrides)` wires the release service.

Tests override parameters (clock, facts, signer store) and start only what they need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_platform.esign import SignerStore, SqlSignerStore, open_signer_store
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import Closable, RuntimeService
from v2v_release.adapters import grpc_api
from v2v_release.adapters.facts_projection import FACTS_FEED
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
    facts_feed = FACTS_FEED
    settings: ReleaseSettings
    app: ReleaseApplication
    signers: SignerStore
    http_app: FastAPI

    def closing(self) -> Iterable[Closable]:
        return (self.signers,) if isinstance(self.signers, SqlSignerStore) else ()


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
        clock_skew=settings.clock_skew,
        site_id=settings.site_id,
        facts=facts or FACTS_FEED.facts_for(settings, NoReleaseFacts()),
        signer_store=signers,
        specifications=settings.specifications(),
        clock=clock,
        **application_overrides,
    )
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    return ReleaseService(settings, app, signers, create_http_app(app, verifier))
