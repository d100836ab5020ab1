"""Infusion test wiring (tests only): fixed identifiers, a settable clock, in-memory facts
(product units' COIs enrolled for this site unless told otherwise; infusions at other sites;
deliveries of units to sites),
an in-memory signer store with one physician and the ward's nurses (each with their own
password), their re-authentications, the readers' scopes, and the application wired to
in-memory (or given) event stores."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from fastapi.testclient import TestClient

from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as pb_grpc
from v2v_infusion.application import Administration, InfusionApplication
from v2v_infusion.bootstrap import InfusionService, bootstrap
from v2v_infusion.domain.values import (
    FailureAlert,
    KnownInfusion,
    KnownProduct,
    ReleaseState,
    ReleaseStatus,
)
from v2v_infusion.settings import InfusionSettings
from v2v_infusion.unpublished_records import InfusionUnpublishedRecords
from v2v_infusion.views import ScanView
from v2v_platform.attribution import Attribution
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.identity import Role
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.conditions import Condition
from v2v_platform.esign import (
    ESigner,
    InMemorySignerStore,
    SignatureRequest,
    Signer,
    hash_password,
)
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.scope import Scope
from v2v_testkit.clock import ManualClock

SITE = "HOSP-A"
OTHER_SITE = "HOSP-B"
COI = issue_coi("A1234", 25, 17).value
OTHER_COI = issue_coi("A1234", 25, 18).value
BATCH = "3f6c2b1a-9d4e-4c7b-8a15-0e2d4f6a8b9c"
OTHER_BATCH = "7d2e4f6a-8b0c-4d1e-9f3a-5b7c9d1e3f5a"
RELEASED_AT = datetime(2025, 6, 4, 8, 0, tzinfo=UTC)
PHYSICIAN_ID = "u-doc"
PHYSICIAN_NAME = "Dr. Petra Physician"
PASSWORD = "correct horse battery"
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
SIGNATURE_REQUEST = SignatureRequest(PHYSICIAN_ID, PASSWORD, "responsibility")
WARD_SCOPE = Scope(SITE, frozenset({Role.INFUSION}))
"""A reader at this treating site."""
OTHER_SITE_SCOPE = Scope(OTHER_SITE, frozenset({Role.INFUSION}))
"""A reader at another treating site: none of this site's records are visible to it."""
AUDITOR_SCOPE = Scope("AUDIT-1", frozenset({Role.AUDITOR}))


def product_din(n: int) -> str:
    return str(issue_din("W1234", 25, n))


@dataclass
class Clock(ManualClock):
    now: datetime = RELEASED_AT + timedelta(hours=2)


@dataclass
class InMemoryFacts:
    """A stand-in for the projection of other contexts' events (the port under it)."""

    units: dict[str, KnownProduct] = field(default_factory=dict)
    releases: dict[str, ReleaseState] = field(default_factory=dict)
    alerts: dict[str, FailureAlert] = field(default_factory=dict)
    treating_sites: dict[str, str] = field(default_factory=dict)
    infusions: dict[str, list[KnownInfusion]] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], datetime] = field(default_factory=dict)
    """(DIN data, site) -> when logistics first delivered the unit there."""

    def product_unit(self, din_data: str) -> KnownProduct | None:
        return self.units.get(din_data)

    def release_of(self, batch_id: str) -> ReleaseState:
        return self.releases.get(batch_id, ReleaseState())

    def failures_of_batch(self, batch_id: str) -> list[FailureAlert]:
        return [alert for alert in self.failures() if alert.batch_id == batch_id]

    def failure(self, failure_id: str) -> FailureAlert | None:
        return self.alerts.get(failure_id)

    def failures(self) -> list[FailureAlert]:
        return sorted(self.alerts.values(), key=lambda alert: alert.raised_at)

    def treating_site_of(self, coi: str) -> str | None:
        return self.treating_sites.get(coi)

    def infusions_of(self, din_data: str) -> list[KnownInfusion]:
        return list(self.infusions.get(din_data, []))

    def delivered_at(self, din_data: str, site_id: str) -> datetime | None:
        return self.deliveries.get((din_data, site_id))

    def deliver(self, din: str, delivered_at: datetime, site_id: str = SITE) -> None:
        """Logistics delivered `din` to `site_id` (this site by default) at `delivered_at`;
        the earliest delivery there stands."""
        key = (din[:13], site_id)
        known = self.deliveries.get(key)
        self.deliveries[key] = delivered_at if known is None else min(known, delivered_at)

    def create_products(
        self,
        dins: Iterable[str],
        coi: str = COI,
        batch_id: str = BATCH,
        condition: Condition = Condition.FRESH_COLD,
        treating_site_id: str | None = SITE,
    ) -> None:
        """Manufacturing's units of `coi`; the COI enrolled for `treating_site_id` (this site
        by default; None: no enrolment known) unless an enrolment is already known."""
        for din in dins:
            self.units[din[:13]] = KnownProduct(din, coi, batch_id, condition)
        if treating_site_id is not None:
            self.treating_sites.setdefault(coi, treating_site_id)

    def release(
        self,
        batch_id: str = BATCH,
        status: ReleaseStatus = ReleaseStatus.PROVISIONAL,
        released_at: datetime | None = RELEASED_AT,
    ) -> None:
        self.releases[batch_id] = ReleaseState(status, released_at)

    def fail(
        self,
        failure_id: str = "failure-1",
        batch_id: str = BATCH,
        coi: str = COI,
        dins: Iterable[str] = (),
        raised_at: datetime = RELEASED_AT + timedelta(hours=1),
    ) -> FailureAlert:
        alert = FailureAlert(
            failure_id,
            coi,
            batch_id,
            tuple(dins),
            "sterility",
            "positive",
            "negative",
            raised_at - timedelta(minutes=5),
            raised_at,
        )
        self.alerts[failure_id] = alert
        return alert

    def enrol(self, coi: str = COI, treating_site_id: str = SITE) -> None:
        self.treating_sites[coi] = treating_site_id

    def infuse(
        self,
        din: str,
        site_id: str = OTHER_SITE,
        coi: str = COI,
        administered_at: datetime = RELEASED_AT + timedelta(hours=1),
    ) -> KnownInfusion:
        """An infusion of `din` at `site_id` (another site by default), as infusion's own
        topic tells it."""
        infusion = KnownInfusion(din, coi, site_id, administered_at)
        self.infusions.setdefault(din[:13], []).append(infusion)
        return infusion


NURSES = ("u-nurse", "u-nurse-2", "u-third", "u-stranger")
"""The ward's nurses (signer role "nurse": bedside scans and witnesses), printed names as
`nurse` gives them."""


def password_of(user_id: str) -> str:
    """Each person's own password (tests only): the physician's is `PASSWORD`, and so is the
    first nurse's (a nurse who knows it is still not a physician)."""
    return PASSWORD if user_id in (PHYSICIAN_ID, "u-nurse") else f"{user_id} own password"


@cache
def _password_hash(user_id: str) -> str:
    return hash_password(password_of(user_id))


def physician_store(site: str = SITE) -> InMemorySignerStore:
    """One physician and the ward's nurses (`NURSES`, without physician signing rights) at
    `site`."""
    store = InMemorySignerStore()
    physician_hash = _password_hash(PHYSICIAN_ID)
    store.put(Signer(site, PHYSICIAN_ID, PHYSICIAN_NAME, frozenset({"physician"}), physician_hash))
    for user_id in NURSES:
        name = f"Nurse {user_id}"
        store.put(Signer(site, user_id, name, frozenset({"nurse"}), _password_hash(user_id)))
    return store


def nurse_signer(user_id: str, printed_name: str, site: str = SITE) -> Signer:
    """Another nurse at `site`, with their own password (`password_of`)."""
    return Signer(site, user_id, printed_name, frozenset({"nurse"}), _password_hash(user_id))


def scanning(user_id: str = "u-nurse", password: str | None = None) -> SignatureRequest:
    """`user_id`'s re-authentication for a bedside scan (their own password unless given)."""
    given = password_of(user_id) if password is None else password
    return SignatureRequest(user_id, given, "verification")


def witnessing(user_id: str = "u-nurse-2", password: str | None = None) -> SignatureRequest:
    """`user_id`'s re-authentication as an infusion's witness (own password unless given)."""
    given = password_of(user_id) if password is None else password
    return SignatureRequest(user_id, given, "witness")


def build_app(
    facts: InMemoryFacts | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    signers: InMemorySignerStore | None = None,
    env: dict[str, str] | None = None,
    unpublished_env: dict[str, str] | None = None,
    **overrides: Any,
) -> InfusionApplication:
    """The application at HOSP-A with its unpublished records; both in memory by default."""
    unpublished = InfusionUnpublishedRecords(env=unpublished_env or POPO)
    moment = clock or Clock()
    return InfusionApplication(
        env=env or POPO,
        unpublished=unpublished,
        site_id=SITE,
        facts=facts or InMemoryFacts(),
        signer=ESigner(signers or physician_store(), moment),
        clock=moment,
        **overrides,
    )


def nurse(user: str = "u-nurse", site: str = SITE) -> Attribution:
    return Attribution(user, f"Nurse {user}", "infusion", site)


def physician() -> Attribution:
    return Attribution(PHYSICIAN_ID, PHYSICIAN_NAME, "infusion", SITE)


def stored_events(app: Any) -> list[Any]:
    """Every event the application stored, in notification order."""
    notifications = app.recorder.select_notifications(1, 100_000)
    return [app.mapper.to_domain_event(n) for n in notifications]


def kinds(app: Any) -> list[str]:
    return [type(event).__qualname__ for event in stored_events(app)]


FIRST_NURSE = "u-nurse"
SECOND_NURSE = "u-nurse-2"


def receive_released(
    app: InfusionApplication,
    facts: InMemoryFacts,
    n: int = 1,
    condition: Condition = Condition.FRESH_COLD,
    batch_id: str = BATCH,
) -> str:
    """Product unit `n` of a provisionally certified batch, received here (and, when cryo,
    thawing): ready for the bedside."""
    din = product_din(n)
    facts.create_products([din], COI, batch_id, condition)
    facts.releases.setdefault(batch_id, ReleaseState(ReleaseStatus.PROVISIONAL, RELEASED_AT))
    app.receive_product(din, None, nurse())
    if condition is Condition.CRYO:
        app.start_thaw(din, None, nurse())
    return din


def scan(
    app: InfusionApplication,
    din: str,
    user_id: str = FIRST_NURSE,
    wristband_coi: str = COI,
    scanned_at: datetime | None = None,
) -> ScanView:
    """`user_id` scans the wristband and unit `din` with their own re-authentication."""
    return app.scan_at_bedside(wristband_coi, din, scanned_at, scanning(user_id), nurse(user_id))


def verify_at_bedside(app: InfusionApplication, din: str) -> None:
    """Two different nurses scan the patient's wristband and the unit, each proven."""
    scan(app, din, FIRST_NURSE)
    scan(app, din, SECOND_NURSE)


def administration(
    din: str,
    witness: str = SECOND_NURSE,
    dose_car_cells_per_kg: float = 1.0e6,
    volume_ml: float = 70.0,
    administered_at: datetime | None = None,
) -> Administration:
    """An infusion of `din` witnessed by `witness`, with the witness's own re-authentication."""
    return Administration(
        din,
        administered_at,
        dose_car_cells_per_kg,
        volume_ml,
        witness,
        f"Nurse {witness}",
        witnessing(witness),
    )


@contextmanager
def running_ward(
    pki: Path, postgres_dsn: str, kafka_bootstrap: str, site: str = SITE
) -> Iterator[InfusionService]:
    """The infusion service of `site` as a process runs it (PostgreSQL, gRPC, relay, facts
    consumer in a fresh group), stopped on exit; signers are put in its store beforehand."""
    settings = InfusionSettings(
        site_id=site, pki_dir=pki, postgres_dsn=postgres_dsn, kafka_bootstrap=kafka_bootstrap
    )
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    running.start_facts_consumer(group_id=f"infusion-it-{random.getrandbits(32):08x}")
    try:
        yield running
    finally:
        running.stop()


def refused_receipt_over_both_apis(
    service: InfusionService, pki: Path, site: str, operator: Any, din: str, at: datetime
) -> tuple[str, str]:
    """A ward receipt of `din` at `at` by `operator` over HTTP (site token) and over gRPC
    (site certificate), each expected refused as invalid input: (HTTP 422 detail, gRPC
    INVALID_ARGUMENT details). Asserts the unit is still only expected afterwards."""
    client = TestClient(service.http_app, raise_server_exceptions=False)
    answer = client.post(
        f"/v1/units/{din}/receipt",
        json={
            "operator": {"user_id": operator.user_id, "printed_name": operator.printed_name},
            "received_at": at.isoformat(),
        },
        headers={"Authorization": f"Bearer {issue_site_token(pki, site)}"},
    )
    assert answer.status_code == 422, answer.text
    with ward_stub(service, pki, site) as ward:
        receipt = pb.ReceiveProductRequest(operator=operator, din=din, received_at=timestamp(at))
        try:
            ward.ReceiveProduct(receipt, timeout=10)
        except grpc.RpcError as refused:
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
            details = str(refused.details())
        else:
            raise AssertionError(f"the receipt of {din} at {at.isoformat()} was accepted")
        unit = ward.GetProductUnit(pb.GetProductUnitRequest(din=din), timeout=10).unit
        assert unit.status == "expected", unit.status  # nothing was recorded
    return str(answer.json()["detail"]), details


@contextmanager
def ward_stub(service: InfusionService, pki: Path, site: str) -> Iterator[Any]:
    """A gRPC stub of the running infusion `service`, calling as `site` (its certificate)."""
    assert service.grpc is not None, "start_grpc first"
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        yield pb_grpc.InfusionServiceStub(channel)
