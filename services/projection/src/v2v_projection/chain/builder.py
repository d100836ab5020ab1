"""The mutable state one chain's facts are folded into, in derivation order.

Handlers (one per event message) only record what a fact says; everything that relates facts
to each other (custody intervals, release before infusion, windows, KPIs) is computed once
all facts are in (see view.py), so the result depends on the set of facts only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from v2v.common.v1 import common_pb2
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.times import iso, stamp_ns

CONDITIONS: dict[int, str] = {
    common_pb2.CONDITION_FRESH_COLD: "fresh-cold",
    common_pb2.CONDITION_FRESH_AMBIENT: "fresh-ambient",
    common_pb2.CONDITION_CRYO: "cryo",
}
STAGES = (
    "enrolled",
    "collection",
    "shipping-to-manufacturing",
    "manufacturing",
    "release",
    "released",
    "shipping-to-treatment",
    "at-treating-site",
    "infused",
)
FAILED_STAGES = ("batch-failed", "rejected")
_RANK = {stage: rank for rank, stage in enumerate(STAGES)}
_new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__


def condition_name(value: int) -> str:
    return CONDITIONS.get(value, "")


@dataclass(slots=True)
class Unit:
    din: str
    kind: str
    condition: str = ""
    created_ns: int | None = None
    parents: list[str] = field(default_factory=list)
    batch_id: str = ""
    collection_id: str = ""
    window_starts_ns: int | None = None


@dataclass(slots=True)
class Batch:
    batch_id: str
    site_id: str
    input_dins: list[str]
    started_ns: int
    status: str = "running"
    product_dins: list[str] = field(default_factory=list)
    ended_ns: int | None = None


class Decision(NamedTuple):
    kind: str  # provisional | final | rejected | oos-justified | oos-accepted
    at_ns: int
    signature: dict[str, Any] | None
    event_id: str


@dataclass(slots=True)
class Release:
    batch_id: str
    spec_version: str = ""
    product_dins: list[str] = field(default_factory=list)
    condition: str = ""
    decisions: list[Decision] = field(default_factory=list)
    failures: dict[str, tuple[str, int, str]] = field(default_factory=dict)


class Shipment(NamedTuple):
    shipment_id: str
    manifest: tuple[str, ...]
    origin: str
    destination: str
    condition: str = ""
    created_ns: int = 0


class Upload(NamedTuple):
    """One upload of a shipment's data logger (its readings decoded only for the view)."""

    shipment_id: str
    device_id: str
    readings: Sequence[Any]  # v2v.logistics.events.v1.TemperatureReading


class Excursion(NamedTuple):
    started_ns: int
    device_id: str
    ended_ns: int
    duration_s: int
    min_c: float
    max_c: float


class CustodyMove(NamedTuple):
    """claim: `to` holds the units from `at`; transfer: from -> to; end: consumed/infused."""

    at_ns: int
    event_id: str
    op: str
    dins: tuple[str, ...]
    from_party: str
    to_party: str
    site_id: str


@dataclass(slots=True)
class Infusion:
    status: str
    din: str
    administered_ns: int | None = None
    adverse_events: list[dict[str, Any]] = field(default_factory=list)


class Administration(NamedTuple):
    din: str
    at_ns: int
    event_id: str
    site_id: str = ""  # the site that recorded it


class Link(NamedTuple):
    """A relationship fact: it relates `named` to the chain when one of `vouchers` is related
    (see relationships.py)."""

    vouchers: tuple[str, ...]
    named: tuple[str, ...]


class ChainBuilder:
    def __init__(self, coi: str) -> None:
        self.coi = coi
        self.stage = ""
        self.treating_site_id = ""
        self.enrolling_site_id = ""
        self.enrolled_ns: int | None = None
        self.authors: set[str] = set()
        """Every site that authored one of the chain's facts (whether related or not)."""
        self.enrolments: set[str] = set()
        """The enrolling and treating sites of its enrolment(s): where visibility starts."""
        self.links: list[Link] = []
        self.batch_authors: dict[str, set[str]] = {}
        """batch id -> the sites that recorded the batch (its GMP site)."""
        self.releasers: list[tuple[str, str]] = []
        """(batch id, site) of each release record: the QC site of that batch."""
        self.infusion_authors: set[str] = set()
        """The sites that recorded the chain's infusion events (its treating site only, unless
        something is wrong)."""
        self.sites: set[str] = set()
        """The sites the chain is visible to (relationships.py), once all facts are in."""
        self.updated_ns = 0
        self.units: dict[str, Unit] = {}
        self.collections: dict[str, tuple[int, int]] = {}
        self.batches: dict[str, Batch] = {}
        self.releases: dict[str, Release] = {}
        self.shipments: dict[str, Shipment] = {}
        self.deliveries: dict[str, int] = {}
        """shipment id -> when its destination received it (the first delivery)."""
        self.uploads: list[Upload] = []
        self.excursions: dict[str, list[Excursion]] = {}
        self.custody: list[CustodyMove] = []
        self.receipts: list[Administration] = []
        self.administrations: list[Administration] = []
        self.thaw_deadlines: dict[str, int] = {}
        """DIN -> the `infuse_by` its latest thaw recorded (the post-thaw window applied)."""
        self.verified_deadlines: dict[str, int] = {}
        """DIN -> the `infuse_by` its latest bedside verification recorded (the deadline the
        treating site applied: release + its fresh product window, or the thaw deadline)."""
        self.acknowledged: set[str] = set()
        self.infusion: Infusion | None = None
        self.signatures: list[dict[str, Any]] = []
        self.alerts: list[tuple[int, str, str, str]] = []

    def reach(self, stage: str) -> None:
        """Stages only move forward, except that a failure stage is left by any progress."""
        current = self.stage
        if (
            not current
            or current in FAILED_STAGES
            or stage in FAILED_STAGES
            or _RANK[stage] > _RANK[current]
        ):
            self.stage = stage

    def alert(self, kind: str, at_ns: int, detail: str, event_id: str) -> None:
        self.alerts.append((at_ns, kind, detail, event_id))

    def link(self, voucher: str, *named: str) -> None:
        """`named` sites are related to the chain if the `voucher` site is."""
        self.links.append(Link((voucher,), named))

    def unit(self, din: str, kind: str) -> Unit:
        found = self.units.get(din)
        if found is None:
            found = self.units[din] = Unit(din, kind)
        return found

    def release(self, batch_id: str) -> Release:
        found = self.releases.get(batch_id)
        if found is None:
            found = self.releases[batch_id] = Release(batch_id)
        return found

    def move(
        self,
        fact: Fact,
        op: str,
        dins: list[str] | tuple[str, ...],
        at_ns: int,
        from_party: str = "",
        to_party: str = "",
    ) -> None:
        move = (at_ns, fact.event_id, op, tuple(dins), from_party, to_party, fact.site_id)
        self.custody.append(_new_tuple(CustodyMove, move))

    def sign(
        self, fact: Fact, manifestation: common_pb2.SignatureManifestation
    ) -> dict[str, Any] | None:
        """Records the e-signature manifestation a payload carries (None when it has none)."""
        if not manifestation.user_id:
            return None
        shown = {
            "event_type": fact.event_type,
            "aggregate_id": fact.aggregate_id,
            "version": fact.version,
            "user_id": manifestation.user_id,
            "printed_name": manifestation.printed_name,
            "meaning": manifestation.meaning,
            "signed_at": iso(stamp_ns(manifestation.signed_at)),
            "record_hash": manifestation.record_hash,
        }
        self.signatures.append(shown)
        return shown
