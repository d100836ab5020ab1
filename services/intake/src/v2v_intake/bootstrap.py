"""The one composition root of the intake service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from v2v.intake.v1 import intake_service_pb2_grpc as pb_grpc
from v2v_intake.adapters.grpc_api import REQUIRED_ROLES, SERVICE_NAME, IntakeServicer
from v2v_intake.adapters.http_api import create_http_app
from v2v_intake.adapters.key_store import InMemoryKeyStore, PostgresKeyStore, SqliteKeyStore
from v2v_intake.adapters.manufacturing_client import GrpcManufacturingSlots
from v2v_intake.application import IntakeApplication, IntakeDependencies, utc_now
from v2v_intake.ports import KeyStore, ManufacturingSlots
from v2v_intake.registers import IntakeRegisters
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth import SiteTlsFiles
from v2v_platform.grpc_service import RunningServer, build_server
from v2v_platform.http_api import SiteTokenVerifier


@dataclass
class IntakeService:
    settings: IntakeSettings
    app: IntakeApplication
    registers: IntakeRegisters
    http: FastAPI
    servicer: IntakeServicer
    closers: list[Callable[[], None]] = field(default_factory=list)

    def serve_grpc(self, address: str | None = None) -> RunningServer:
        return build_server(
            tls=SiteTlsFiles.for_site(self.settings.pki_dir, self.settings.site_id),
            required_roles=REQUIRED_ROLES,
            register=lambda server: pb_grpc.add_IntakeServiceServicer_to_server(
                self.servicer, server
            ),
            service_names=[SERVICE_NAME],
            address=address or self.settings.grpc_address,
        )

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def key_store_for(settings: IntakeSettings) -> Any:
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
    clock: Callable[[], datetime] = utc_now,
) -> IntakeService:
    closers: list[Callable[[], None]] = []
    if manufacturing is None:
        client = GrpcManufacturingSlots.connect(
            settings.manufacturing_target,
            SiteTlsFiles.for_site(settings.pki_dir, settings.site_id),
            settings.manufacturing_timeout_s,
        )
        closers.append(client.close)
        manufacturing = client
    if keys is None:
        keys = key_store_for(settings)
        closers.append(getattr(keys, "close", lambda: None))
    registers = IntakeRegisters(env=settings.registers_env())
    closers.append(registers.close)
    deps = IntakeDependencies(registers, keys, manufacturing, settings.fin, settings.site_id, clock)
    app = IntakeApplication(env=settings.event_store.eventsourcing_env(), dependencies=deps)
    closers.append(app.close)
    verifier = SiteTokenVerifier(settings.pki_dir / "ca.crt")
    return IntakeService(
        settings, app, registers, create_http_app(app, verifier), IntakeServicer(app), closers
    )
