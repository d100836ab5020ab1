"""Builders for intake tests: in-memory persistence, a fake of the manufacturing slot port,
operators, readers, the site's signer store (collection staff, each with their own password),
their re-authentications, and therapies at each step."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.application import IntakeApplication
from v2v_intake.domain.values import BookedSlot, PersonalDetails
from v2v_intake.unpublished_records import IntakeUnpublishedRecords
from v2v_intake.views import CollectionInput
from v2v_platform.attribution import Attribution
from v2v_platform.auth import Role
from v2v_platform.din_allocation import DinBlock, IssuingService, declare_all
from v2v_platform.errors import Refused
from v2v_platform.esign import (
    ESigner,
    InMemorySignerStore,
    SignatureRequest,
    Signer,
    SignerStore,
    hash_password,
)
from v2v_platform.scope import Scope
from v2v_testkit.clock import ManualClock

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
SITE = "HOSP-A"
FIN = "A1234"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
ENROLLED_AT = NOW - timedelta(days=7)
"""When `enrolled` enrols the patient (clinical time): before every collection the tests record
(`collection`: hours before NOW)."""
DETAILS = PersonalDetails("Marguerite", "Zylberstein", "MRN-778899", date(1971, 5, 2))
STAFF = ("u-1", "u-2", "u-3")
"""The collection staff registered as signers (role "collection") at the site."""
CLERK = "u-clerk"
"""A signer at the site without the "collection" signer role."""


def password_of(user_id: str) -> str:
    """Each person's own password (tests only)."""
    return f"{user_id} own password"


@cache
def _password_hash(user_id: str) -> str:
    return hash_password(password_of(user_id))


def signer_store(site_id: str = SITE) -> InMemorySignerStore:
    """The site's collection staff (`STAFF`, printed names as `operator` gives them) and a
    clerk who may not verify labels."""
    store = InMemorySignerStore()
    for user_id in STAFF:
        name = f"Operator {user_id}"
        store.put(
            Signer(site_id, user_id, name, frozenset({"collection"}), _password_hash(user_id))
        )
    store.put(Signer(site_id, CLERK, "Clara Clerk", frozenset({"records"}), _password_hash(CLERK)))
    return store


def register_signer(intake: Intake, user_id: str, printed_name: str) -> None:
    """Another collection signer at the site, with their own password (`password_of`)."""
    roles = frozenset({"collection"})
    signer = Signer(intake.app.site_id, user_id, printed_name, roles, _password_hash(user_id))
    intake.signers.put(signer)


def proof(user_id: str = "u-1", password: str | None = None) -> SignatureRequest:
    """`user_id`'s re-authentication for a label scan (their own password unless given)."""
    given = password_of(user_id) if password is None else password
    return SignatureRequest(user_id, given, "verification")


@dataclass
class FixedClock(ManualClock):
    now: datetime = NOW


@dataclass
class FakeSlots:
    """An in-memory stand-in for the manufacturing slot PORT (not for intake)."""

    free: int = 100
    booked: list[tuple[str, str, date]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def book(
        self, coi: str, manufacturing_site_id: str, slot_date: date, by: Attribution
    ) -> BookedSlot:
        with self.lock:
            if self.free <= 0:
                raise Refused(f"no free slot at {manufacturing_site_id} on {slot_date}")
            self.free -= 1
            self.booked.append((coi, manufacturing_site_id, slot_date))
            slot_id = f"SLOT-{manufacturing_site_id}-{len(self.booked)}"
        return BookedSlot(slot_id, manufacturing_site_id, slot_date)


@dataclass
class Intake:
    app: IntakeApplication
    keys: InMemoryKeyStore
    slots: FakeSlots
    clock: FixedClock
    unpublished: IntakeUnpublishedRecords
    signers: SignerStore


def din_block(site_id: str = SITE, first: int | None = None, last: int | None = None) -> DinBlock:
    """The site's intake's DIN block under FIN (its default, 1-499999, unless given)."""
    block = DinBlock.default(FIN, IssuingService(site_id, "intake"))
    return DinBlock(FIN, block.issuer, first or block.first, last or block.last)


def declare_din_block(pki_dir: Path, fin: str = FIN, site_id: str = SITE) -> DinBlock:
    """Declare the site's intake's default DIN block under `fin` in the PKI directory (what a
    service needs to start: `v2v_platform.din_allocation`)."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    issuer = IssuingService(site_id, "intake")
    block = declare_all(pki_dir, [(fin, issuer)]).block_of(fin, issuer)
    assert block is not None
    return block


def build_intake(site_id: str = SITE, block: DinBlock | None = None) -> Intake:
    """Intake at `site_id`, numbering DINs from `block` under its FIN (by default the site's
    default block under FIN A1234)."""
    keys, slots, clock = InMemoryKeyStore(), FakeSlots(), FixedClock()
    block = block or din_block(site_id)
    unpublished = IntakeUnpublishedRecords(env=POPO, din_block=block)
    signers = signer_store(site_id)
    app = IntakeApplication(
        env=POPO,
        site_id=site_id,
        unpublished=unpublished,
        clock=clock,
        fin=block.fin,
        keys=keys,
        manufacturing=slots,
        signer=ESigner(signers, clock),
    )
    return Intake(app, keys, slots, clock, unpublished, signers)


def operator(user_id: str = "u-1", site_id: str = SITE, reason: str = "") -> Attribution:
    return Attribution(user_id, f"Operator {user_id}", "collection", site_id, reason)


def reader(site_id: str = SITE, *roles: Role) -> Scope:
    """A reading site (a collection site unless other roles are given)."""
    return Scope(site_id, frozenset(roles or (Role.COLLECTION,)))


def collection(slot_id: str = "", hours_ago: int = 2, volume_ml: float = 212.5) -> CollectionInput:
    ended = NOW - timedelta(hours=hours_ago)
    return CollectionInput(ended - timedelta(hours=4), ended, volume_ml, 12.4, 6.1, slot_id)


def enrolled(
    intake: Intake, pseudonym: str = "PSN-0001", enrolled_at: datetime = ENROLLED_AT
) -> str:
    """The patient enrolled (at `enrolled_at`: a week before NOW unless given)."""
    return intake.app.enrol_patient(pseudonym, DETAILS, "HOSP-A", operator(), enrolled_at)


def collected(intake: Intake, pseudonym: str = "PSN-0001") -> tuple[str, str]:
    coi = enrolled(intake, pseudonym)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    return coi, intake.app.record_collection(coi, collection(), operator())


def labelled(intake: Intake, count: int = 1) -> tuple[str, list[str]]:
    coi, collection_id = collected(intake)
    return coi, intake.app.label_units(coi, collection_id, count, "apheresis-bag", operator())


def scan(
    intake: Intake, coi: str, din: str, user_id: str, scanned: tuple[str, str] | None = None
) -> bool:
    """`user_id` scans unit `din`'s label (as `scanned`: DIN and COI bar codes; the unit's own
    by default) with their own re-authentication."""
    scanned_din, scanned_coi = scanned or (din, coi)
    by = operator(user_id)
    return intake.app.verify_label(coi, din, scanned_din, scanned_coi, proof(user_id), by)


def verified(intake: Intake) -> tuple[str, str]:
    coi, [din] = labelled(intake)
    scan(intake, coi, din, "u-1")
    scan(intake, coi, din, "u-2")
    return coi, din


def stored_events(intake: Intake) -> list[Any]:
    """Every domain event the intake application stored, in log order."""
    notifications = intake.app.recorder.select_notifications(1, 10_000)
    return [intake.app.mapper.to_domain_event(n) for n in notifications]
