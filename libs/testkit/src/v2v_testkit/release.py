"""Release test support (tests only): fixed identifiers, a settable clock, in-memory release
facts and signers, readers' scopes, and the application wired to an in-memory (or given)
event store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import Role
from v2v_platform.conditions import Condition
from v2v_platform.esign import InMemorySignerStore, SignatureRequest, Signer, hash_password
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.scope import Scope
from v2v_release.application import ReleaseApplication
from v2v_release.domain.specification import SpecificationCatalog
from v2v_release.domain.values import Analyst, BatchFact, QcReport
from v2v_release.ports import ReleaseFacts
from v2v_release.views import RecordedResultView
from v2v_testkit.clock import ManualClock

QC_SITE = "QC-1"
GMP = "GMP-B"
TREATING_SITE = "HOSP-A"
OTHER_SITE = "HOSP-C"
BATCH_ID = "3f6c2b1a-9d4e-4c7b-8a15-0e2d4f6a8b9c"
OTHER_BATCH_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
COI = issue_coi("A1234", 25, 17).value
STARTED_AT = datetime(2025, 6, 2, 8, 30, tzinfo=UTC)
HARVESTED_AT = STARTED_AT + timedelta(days=7)
PRODUCT_DINS = (str(issue_din("W1234", 25, 1)), str(issue_din("W1234", 25, 2)))
PASSWORD = "correct horse battery"
QP_USER = "u-qp"
PHYSICIAN_USER = "u-doc"
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}

PASSING = {
    "viability": ("92.5", "%", ""),
    "cd3": ("88", "%", ""),
    "car": ("35", "%", ""),
    "dose": ("1.2", "10^6 CAR+ cells/kg", ""),
    "endotoxin": ("0.1", "EU/mL", ""),
    "mycoplasma": ("negative", "", "PCR"),
    "sterility": ("negative", "", "BacT/ALERT"),
    "vcn": ("2.1", "copies/transduced cell", "qPCR"),
    "rcl": ("absent", "", "qPCR"),
}
FAILING = {
    "viability": "55",
    "endotoxin": "0.9",
    "mycoplasma": "positive",
    "sterility": "positive",
    "vcn": "7.5",
    "rcl": "detected",
}
PRE_RELEASE = ["viability", "cd3", "car", "dose", "endotoxin", "mycoplasma"]
POST_RELEASE = ["sterility", "vcn", "rcl"]


@dataclass
class Clock(ManualClock):
    now: datetime = STARTED_AT + timedelta(days=9)


@dataclass
class InMemoryReleaseFacts:
    """A stand-in for the projection of manufacturing's and intake's events (the port)."""

    batches: dict[str, BatchFact] = field(default_factory=dict)
    treating_sites: dict[str, str] = field(default_factory=dict)

    def batch(self, batch_id: str) -> BatchFact | None:
        return self.batches.get(batch_id)

    def treating_site(self, coi: str) -> str | None:
        return self.treating_sites.get(coi)

    def started(
        self, batch_id: str = BATCH_ID, coi: str = COI, started_at: datetime = STARTED_AT
    ) -> None:
        self.batches[batch_id] = BatchFact(batch_id, coi, GMP, started_at)

    def harvested(
        self,
        batch_id: str = BATCH_ID,
        condition: Condition = Condition.FRESH_COLD,
        harvested_at: datetime | None = HARVESTED_AT,
    ) -> None:
        fact = self.batches[batch_id]
        self.batches[batch_id] = replace(
            fact, product_dins=PRODUCT_DINS, hold_condition=condition, harvested_at=harvested_at
        )

    def failed(self, batch_id: str = BATCH_ID, reason: str = "no expansion") -> None:
        self.batches[batch_id] = replace(self.batches[batch_id], failure_reason=reason)

    def enrolled(self, coi: str = COI, treating_site_id: str = TREATING_SITE) -> None:
        self.treating_sites[coi] = treating_site_id


def signers() -> InMemorySignerStore:
    """A QP at the QC site and a treating physician at the treating site."""
    store = InMemorySignerStore()
    digest = hash_password(PASSWORD)
    store.put(Signer(QC_SITE, QP_USER, "Dr. Quinn Person", frozenset({"qp"}), digest))
    store.put(Signer(QC_SITE, "u-analyst", "Ann Analyst", frozenset({"analyst"}), digest))
    store.put(
        Signer(TREATING_SITE, PHYSICIAN_USER, "Dr. Tara Treat", frozenset({"physician"}), digest)
    )
    return store


def build_app(
    facts: ReleaseFacts | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    env: dict[str, str] | None = None,
    signer_store: InMemorySignerStore | None = None,
    specifications: SpecificationCatalog | None = None,
    **overrides: Any,
) -> ReleaseApplication:
    settings: dict[str, Any] = {"site_id": QC_SITE, **overrides}
    if clock is not None:
        settings["clock"] = clock
    return ReleaseApplication(
        env=env or POPO,
        facts=facts,
        signer_store=signer_store or signers(),
        specifications=specifications,
        **settings,
    )


def qc(site: str = QC_SITE, user: str = "u-analyst", role: str = "qc") -> Attribution:
    return Attribution(user, f"User {user}", role, site)


def physician(site: str = TREATING_SITE) -> Attribution:
    return Attribution(PHYSICIAN_USER, "Dr. Tara Treat", "infusion", site)


def reader(site: str = QC_SITE, role: Role = Role.QC) -> Scope:
    """The scope of a caller at `site` with `role`, as the adapters build it."""
    return Scope(site, frozenset({role}))


def qp_signature(password: str = PASSWORD, user: str = QP_USER) -> SignatureRequest:
    return SignatureRequest(user, password, "approval")


def physician_signature(password: str = PASSWORD) -> SignatureRequest:
    return SignatureRequest(PHYSICIAN_USER, password, "responsibility")


def report(test: str, value: str | None = None, at: datetime | None = None) -> QcReport:
    passing, unit, method = PASSING[test]
    when = at or STARTED_AT + timedelta(days=8)
    return QcReport(test, method, value or passing, unit, when, Analyst("u-lab", "Lee Lab"))


def record(
    app: ReleaseApplication, tests: list[str], batch_id: str = BATCH_ID, **values: str
) -> dict[str, RecordedResultView]:
    """Record a result of each test (passing unless `values` gives one)."""
    return {
        test: app.record_qc_result(batch_id, report(test, values.get(test)), None, qc())
        for test in tests
    }


def stored_events(app: ReleaseApplication) -> list[Any]:
    """Every event the application stored, in notification order."""
    notifications = app.recorder.select_notifications(1, 100_000)
    return [app.mapper.to_domain_event(n) for n in notifications]


def kinds(app: ReleaseApplication) -> list[str]:
    return [type(event).__name__ for event in stored_events(app)]
