"""Who takes part: hospitals that collect and infuse, GMP sites that manufacture and release,
the couriers' logistics site and the auditor; the people acting at each site.

The persons of the two-person checks are distinct people with their own passwords: at each
hospital two collection staff (label verification at intake, signer role "collection") and
two nurses (bedside scans and the infusion's witness at infusion, signer role "nurse"), each
re-authenticating with their own password (`Hospital.reauthentication`).

The default is the issue's consortium: HOSP-A and HOSP-B (collection + infusion), GMP-1
(manufacturing + QC), LOGI-1 (couriers) and AUDIT (auditor, the projection core's site);
optionally an in-house hospital (INH-1) that collects, manufactures, releases and infuses
itself: one site, one FIN, its departments handing bags to each other
(`site:INH-1/collection` -> `/gmp` -> `/ward`).
"""

from __future__ import annotations

from dataclasses import dataclass

from v2v.common.v1.common_pb2 import ESignatureRequest, Operator

HOSPITAL_LETTERS = "ABCDEFGHJKLMN"  # FIN first characters for hospitals (never O)
GMP_LETTERS = "PQRSTUVWXYZ"
IN_HOUSE_SITE, IN_HOUSE_FIN = "INH-1", "I1234"
MAX_IN_HOUSE = 1
SIGNING_PASSWORD = "correct horse battery staple"  # demo signers only; never a real password
COURIERS = (("C-1", "Kim Courier"), ("C-2", "Lou Courier"), ("C-3", "Max Courier"))
COLLECTION_SIGNER = "collection"
"""The signer role intake's label verification needs (its signer store)."""
NURSE_SIGNER = "nurse"
"""The signer role infusion's bedside scans and witnesses need (its signer store)."""


def personal_password(site_id: str, user_id: str) -> str:
    """A demo person's own password (demo people only; never a real password)."""
    return f"{SIGNING_PASSWORD}: {user_id} at {site_id}"


class ConsortiumError(ValueError):
    """The requested consortium cannot be built."""


@dataclass(frozen=True)
class GmpSite:
    site_id: str
    fin: str

    @property
    def operator(self) -> Operator:
        return Operator(user_id="m-1", printed_name=f"Grace Operator ({self.site_id})")

    @property
    def analyst(self) -> Operator:
        return Operator(user_id="qc-1", printed_name=f"Ana Lyst ({self.site_id})")

    @property
    def qp(self) -> Operator:
        return Operator(user_id="qp-1", printed_name=f"Quentin Pharmacist ({self.site_id})")


@dataclass(frozen=True)
class Hospital:
    site_id: str
    fin: str
    gmp: GmpSite  # where its patients' cells are manufactured

    @property
    def in_house(self) -> bool:
        """It manufactures its patients' cells itself (its GMP department)."""
        return self.gmp.site_id == self.site_id

    @property
    def departments(self) -> tuple[str, str, str]:
        """Where an in-house hospital's bags go: collection -> GMP -> ward ("" elsewhere:
        the sites themselves are the parties)."""
        return ("collection", "gmp", "ward") if self.in_house else ("", "", "")

    @property
    def nurses(self) -> tuple[Operator, Operator]:
        """The ward's two nurses: the bedside scans and the infusion's witness."""
        suffix = self.site_id
        return (
            Operator(user_id="n-1", printed_name=f"Nora Nurse ({suffix})"),
            Operator(user_id="n-2", printed_name=f"Ned Nurse ({suffix})"),
        )

    @property
    def collection_staff(self) -> tuple[Operator, Operator]:
        """The apheresis unit's two staff: enrolment to packaging, and the two label scans."""
        suffix = self.site_id
        return (
            Operator(user_id="c-1", printed_name=f"Cora Collector ({suffix})"),
            Operator(user_id="c-2", printed_name=f"Cal Collector ({suffix})"),
        )

    def checking_persons(self) -> dict[str, tuple[tuple[Operator, str], ...]]:
        """The persons of each service's two-person checks here, with their signer role:
        intake's label verification, infusion's bedside scans and witness."""
        return {
            "intake": tuple((staff, COLLECTION_SIGNER) for staff in self.collection_staff),
            "infusion": tuple((nurse, NURSE_SIGNER) for nurse in self.nurses),
        }

    def password(self, person: Operator) -> str:
        """`person`'s own password at this hospital."""
        return personal_password(self.site_id, person.user_id)

    def reauthentication(self, person: Operator, meaning: str) -> ESignatureRequest:
        """`person` re-authenticating with their own password (a two-person check's person)."""
        return ESignatureRequest(
            user_id=person.user_id, password=self.password(person), meaning=meaning
        )

    @property
    def physician(self) -> Operator:
        letter = self.site_id.rsplit("-", 1)[-1].lower()
        return Operator(user_id=f"dr-{letter}", printed_name=f"Dr Petra Physician ({self.site_id})")


@dataclass(frozen=True)
class Consortium:
    hospitals: tuple[Hospital, ...]
    gmp_sites: tuple[GmpSite, ...]
    logistics_site: str = "LOGI-1"
    auditor_site: str = "AUDIT"

    @classmethod
    def sized(cls, hospitals: int = 2, gmp_sites: int = 1, in_house: int = 0) -> Consortium:
        """`hospitals` hospitals HOSP-A, HOSP-B, ... and `gmp_sites` GMP sites GMP-1, ...;
        hospital i manufactures at GMP site i modulo the number of GMP sites; `in_house` (0
        or 1): the in-house hospital INH-1 after them, its own GMP site as well."""
        if not 1 <= hospitals <= len(HOSPITAL_LETTERS):
            raise ConsortiumError(f"hospitals must be 1 to {len(HOSPITAL_LETTERS)}")
        if not 1 <= gmp_sites <= len(GMP_LETTERS):
            raise ConsortiumError(f"GMP sites must be 1 to {len(GMP_LETTERS)}")
        if not 0 <= in_house <= MAX_IN_HOUSE:
            raise ConsortiumError(f"in-house hospitals must be 0 to {MAX_IN_HOUSE}")
        gmps = tuple(GmpSite(f"GMP-{n + 1}", f"{GMP_LETTERS[n]}1234") for n in range(gmp_sites))
        hosps = tuple(
            Hospital(f"HOSP-{letter}", f"{letter}1234", gmps[n % gmp_sites])
            for n, letter in enumerate(HOSPITAL_LETTERS[:hospitals])
        )
        if in_house:
            own = GmpSite(IN_HOUSE_SITE, IN_HOUSE_FIN)
            return cls((*hosps, Hospital(IN_HOUSE_SITE, IN_HOUSE_FIN, own)), (*gmps, own))
        return cls(hosps, gmps)

    def site_specs(self) -> list[str]:
        """`SITE_ID:roles` for `v2v pki init` (an in-house hospital holds every role)."""
        roles: dict[str, list[str]] = {}
        for hospital in self.hospitals:
            roles.setdefault(hospital.site_id, []).extend(("collection", "infusion"))
        for gmp in self.gmp_sites:
            roles.setdefault(gmp.site_id, []).extend(("manufacturing", "qc"))
        return [
            *(f"{site}:{','.join(held)}" for site, held in roles.items()),
            f"{self.logistics_site}:courier",
            f"{self.auditor_site}:auditor",
        ]

    def hospital(self, site_id: str) -> Hospital:
        for hospital in self.hospitals:
            if hospital.site_id == site_id:
                return hospital
        raise ConsortiumError(f"no hospital {site_id} in this consortium")

    @property
    def site_ids(self) -> list[str]:
        return [spec.split(":", 1)[0] for spec in self.site_specs()]
