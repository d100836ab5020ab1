"""The composition root: `bootstrap(settings, **overrides)` wires the release service.

Tests override parameters (clock, batch facts, signer store) and start only what they need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_platform.consumer import EnvelopeConsumer
from v2v_platform.envelope.headers import topic_for
from v2v_platform.esign import SignerStore, SqlSignerStore, open_signer_store
from v2v_platform.grpc_service import RunningServer
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.read_queries import for_postgres
from v2v_platform.relay.process import RelayRuntime
from v2v_platform.service_runtime import ServiceRuntime, relay_settings_for
from v2v_release.adapters import grpc_api
from v2v_release.adapters.batch_projection import (
    CONSUMER_NAME,
    BatchFactsProjection,
    create_tables,
    postgres_facts,
    sqlite_facts,
)
from v2v_release.adapters.http_api import create_http_app
from v2v_release.application import BatchFacts, NoBatchFacts, ReleaseApplication, utc_now
from v2v_release.relay_spec import RELAY_SPEC
from v2v_release.settings import ReleaseSettings

FACTS_SUFFIX = "batch-facts"


@dataclass
class ReleaseService:
    settings: ReleaseSettings
    app: ReleaseApplication
    signers: SignerStore
    http_app: FastAPI
    runtime: ServiceRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.runtime = ServiceRuntime("release", self.settings.site_id, self.settings.pki_dir)

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
        return self.runtime.start_relay(RELAY_SPEC, relay_settings_for("release", self.settings))

    def start_facts_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        store = self.runtime.consumer_store(
            CONSUMER_NAME,
            self.settings.postgres_dsn,
            self.settings.side_sqlite_path(FACTS_SUFFIX),
            create_tables,
        )
        consumer = EnvelopeConsumer(
            bootstrap=relay_settings_for("release", self.settings).kafka_bootstrap,
            group_id=group_id or f"v2v-release-{self.settings.site_id}-facts",
            topics=[topic_for("manufacturing"), topic_for("intake")],
            store=store,
            apply=BatchFactsProjection(for_postgres if self.settings.postgres_dsn else str),
        )
        return self.runtime.start_consumer("facts-consumer", consumer)

    def stop(self) -> None:
        self.runtime.stop()
        self.app.close()
        if isinstance(self.signers, SqlSignerStore):
            self.signers.close()


def batch_facts_for(settings: ReleaseSettings) -> BatchFacts:
    if settings.postgres_dsn:
        return postgres_facts(settings.postgres_dsn)
    path = settings.side_sqlite_path(FACTS_SUFFIX)
    return sqlite_facts(path) if path is not None else NoBatchFacts()


def bootstrap(
    settings: ReleaseSettings,
    *,
    batch_facts: BatchFacts | None = None,
    signer_store: SignerStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> ReleaseService:
    signers = signer_store or open_signer_store(settings.postgres_dsn, settings.sqlite_path)
    app = ReleaseApplication(
        env=settings.event_store.eventsourcing_env(),
        site_id=settings.site_id,
        batch_facts=batch_facts or batch_facts_for(settings),
        signer_store=signers,
        specifications=settings.specifications(),
        clock=clock,
        **application_overrides,
    )
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    return ReleaseService(settings, app, signers, create_http_app(app, verifier))
