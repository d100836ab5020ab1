"""The composition root: `bootstrap(settings, **overrides)` wires the intake service.

Tests override its parameters (the manufacturing slot port, the key store, the signer store,
the clock) and start only what they need. The signer store (who may verify labels: signer
role "collection", managed with `v2v signer add|unlock`) is the service's own: its PostgreSQL
database, or a SQLite file next to its event store. Intake learns nothing from Kafka: it
starts no consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI

from v2v_intake.adapters import grpc_api
from v2v_intake.adapters.http_api import create_http_app
from v2v_intake.adapters.key_store import InMemoryKeyStore, PostgresKeyStore, SqliteKeyStore
from v2v_intake.adapters.manufacturing_client import GrpcManufacturingSlots
from v2v_intake.application import IntakeApplication
from v2v_intake.ports import KeyStore, ManufacturingSlots
from v2v_intake.relay_spec import RELAY_SPEC
from v2v_intake.settings import IntakeSettings
from v2v_intake.unpublished_records import IntakeUnpublishedRecords
from v2v_platform.auth import SiteTlsFiles
from v2v_platform.esign import ESigner, SignerStore, SqlSignerStore, open_signer_store
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.service_application import utc_now
from v2v_platform.service_runtime import Closable, RuntimeService


@dataclass
class IntakeService(RuntimeService):
    context = "intake"
    relay_spec = RELAY_SPEC
    api = grpc_api
    settings: IntakeSettings
    app: IntakeApplication
    unpublished: IntakeUnpublishedRecords
    http_app: FastAPI
    opened: list[Closable] = field(default_factory=list)
    """What bootstrap opened besides the applications (key store, signer store, manufacturing
    channel)."""

    def closing(self) -> Iterable[Closable]:
        return (self.unpublished, *reversed(self.opened))


def key_store_for(settings: IntakeSettings) -> PostgresKeyStore | SqliteKeyStore | InMemoryKeyStore:
    if settings.postgres_dsn:
        return PostgresKeyStore(settings.postgres_dsn)
    if settings.sqlite_path:
        return SqliteKeyStore(settings.sqlite_path.with_suffix(".keys.sqlite"))
    return InMemoryKeyStore()


def bootstrap(
    settings: IntakeSettings,
    *,
    manufacturing: ManufacturingSlots | None = None,
    keys: KeyStore | None = None,
    signers: SignerStore | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> IntakeService:
    opened: list[Closable] = []
    if manufacturing is None:
        client = GrpcManufacturingSlots.connect(
            settings.manufacturing_target,
            SiteTlsFiles.for_site(settings.pki_dir, settings.site_id),
            settings.manufacturing_timeout_s,
            settings.manufacturing_retry_s,
        )
        opened.append(client)
        manufacturing = client
    if keys is None:
        store = key_store_for(settings)
        opened.append(store)
        keys = store
    if signers is None:
        signers = open_signer_store(settings.postgres_dsn, settings.sqlite_path)
        if isinstance(signers, SqlSignerStore):
            opened.append(signers)
    unpublished = IntakeUnpublishedRecords(
        env=settings.registers_env(),
        din_block=settings.din_block(),
        reservation_size=settings.number_reservation_size,
    )
    app = IntakeApplication(
        env=settings.event_store.eventsourcing_env(),
        clock_skew=settings.clock_skew,
        site_id=settings.site_id,
        unpublished=unpublished,
        clock=clock,
        fin=settings.fin,
        keys=keys,
        manufacturing=manufacturing,
        signer=ESigner(signers, clock),
        product_codes=settings.product_codes(),
    )
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    return IntakeService(settings, app, unpublished, create_http_app(app, verifier), opened)
