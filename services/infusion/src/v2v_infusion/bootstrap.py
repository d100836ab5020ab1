"""The composition root: `bootstrap(settings, **overrides)` wires the infusion service.

Tests override parameters (clock, facts, signer store) and start only the parts they need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v_infusion.adapters import grpc_api
from v2v_infusion.adapters.facts_projection import CONSUMER_NAME, FactsProjection
from v2v_infusion.adapters.facts_sql import create_tables, postgres_facts, sqlite_facts
from v2v_infusion.adapters.http_api import create_http_app
from v2v_infusion.application import InfusionApplication
from v2v_infusion.core import utc_now
from v2v_infusion.facts import InfusionFacts, NoFacts
from v2v_infusion.registers import InfusionRegisters
from v2v_infusion.relay_spec import RELAY_SPEC
from v2v_infusion.settings import InfusionSettings
from v2v_platform.consumer import EnvelopeConsumer
from v2v_platform.envelope.headers import topic_for
from v2v_platform.esign import ESigner, SignerStore, open_signer_store
from v2v_platform.grpc_service import RunningServer
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.read_queries import for_postgres
from v2v_platform.relay.process import RelayRuntime
from v2v_platform.service_runtime import ServiceRuntime, relay_settings_for

FACT_TOPICS = ("manufacturing", "release", "intake")


@dataclass
class InfusionService:
    settings: InfusionSettings
    app: InfusionApplication
    registers: InfusionRegisters
    http_app: FastAPI
    runtime: ServiceRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.runtime = ServiceRuntime("infusion", self.settings.site_id, self.settings.pki_dir)

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
        return self.runtime.start_relay(RELAY_SPEC, relay_settings_for("infusion", self.settings))

    def start_facts_consumer(self, group_id: str | None = None) -> EnvelopeConsumer:
        """Projects manufacturing, release and intake events (polled every 200 ms at most)."""
        store = self.runtime.consumer_store(
            CONSUMER_NAME,
            self.settings.postgres_dsn,
            self.settings.facts_sqlite_path,
            create_tables,
        )
        consumer = EnvelopeConsumer(
            bootstrap=relay_settings_for("infusion", self.settings).kafka_bootstrap,
            group_id=group_id or f"v2v-infusion-{self.settings.site_id}-facts",
            topics=[topic_for(context) for context in FACT_TOPICS],
            store=store,
            apply=FactsProjection(for_postgres if self.settings.postgres_dsn else str),
        )
        return self.runtime.start_consumer("facts-consumer", consumer)

    def stop(self) -> None:
        self.runtime.stop()
        self.app.close()
        self.registers.close()


def facts_for(settings: InfusionSettings) -> InfusionFacts:
    if settings.postgres_dsn:
        return postgres_facts(settings.postgres_dsn)
    if settings.facts_sqlite_path is not None:
        return sqlite_facts(settings.facts_sqlite_path)
    return NoFacts()


def bootstrap(
    settings: InfusionSettings,
    *,
    facts: InfusionFacts | None = None,
    signers: SignerStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    **application_overrides: Any,
) -> InfusionService:
    registers = InfusionRegisters(env=settings.registers_env())
    store = signers or open_signer_store(settings.postgres_dsn, settings.sqlite_path)
    app = InfusionApplication(
        env=settings.event_store.eventsourcing_env(),
        registers=registers,
        site_id=settings.site_id,
        facts=facts or facts_for(settings),
        signer=ESigner(store, clock),
        clock=clock,
        windows=settings.windows,
        **application_overrides,
    )
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    return InfusionService(settings, app, registers, create_http_app(app, verifier))
