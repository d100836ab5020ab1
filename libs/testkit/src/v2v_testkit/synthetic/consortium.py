"""The consortium of a synthetic history: sites and their facility numbers and roles, couriers,
the named users per role at each site, the sites' signing keys (derived from the seed) and the
key ring naming them with their roles, and the unit conditions. Everything deterministic."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v_platform.auth.identity import Role
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey

Person = tuple[str, str, str]

FINS = {"HOSP-A": "A1234", "HOSP-C": "C5678", "GMP-B": "B2345", "GMP-D": "D3456"}
HOSPITALS = ("HOSP-A", "HOSP-C")
GMP_SITES = ("GMP-B", "GMP-D")
QC_SITE_OF = {"GMP-B": "QC-B", "GMP-D": "QC-D"}
LOGISTICS_SITE = "LOGI-1"
SITES = (*HOSPITALS, *GMP_SITES, *QC_SITE_OF.values(), LOGISTICS_SITE)
COURIERS = ("C-17", "C-18", "C-21", "C-34")
SITE_ROLES: dict[str, frozenset[Role]] = {
    **{site: frozenset({Role.COLLECTION, Role.INFUSION}) for site in HOSPITALS},
    **{site: frozenset({Role.MANUFACTURING}) for site in GMP_SITES},
    **{site: frozenset({Role.QC}) for site in QC_SITE_OF.values()},
    LOGISTICS_SITE: frozenset({Role.COURIER}),
}
"""What each site may author (contracts/authorship.yaml): hospitals collect and infuse, GMP
sites manufacture, QC labs release, the logistics site records custody."""

Condition: TypeAlias = common_pb2.Condition.ValueType
COLD: Condition = common_pb2.CONDITION_FRESH_COLD
CRYO: Condition = common_pb2.CONDITION_CRYO


def people(site: str) -> dict[str, list[Person]]:
    """Two or three named users per role at a site (deterministic)."""
    tag = site.replace("-", "").lower()
    roles = {
        "collection": ["Nurse Ada", "Nurse Ben", "Dr. Cleo"],
        "manufacturing": ["Operator Dan", "Operator Eve"],
        "qc": ["Analyst Fay", "Analyst Gus"],
        "qp": ["Dr. Quinn Person", "Dr. Rita Qualified"],
        "infusion": ["Nurse Ian", "Nurse Joy", "Dr. Kai Physician"],
        "courier": ["Kim Courier", "Lou Courier"],
    }
    return {
        role: [(f"u-{tag}-{role[:3]}-{i}", name, role) for i, name in enumerate(names)]
        for role, names in roles.items()
    }


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def site_signers(seed: int) -> dict[str, SiteSigningKey]:
    """Every site's signing key, derived from the seed (the same seed, the same keys)."""
    return {
        site: SiteSigningKey.from_seed(site, hashlib.sha256(f"v2v:{seed}:{site}".encode()).digest())
        for site in SITES
    }


def key_ring(signers: dict[str, SiteSigningKey]) -> KeyRing:
    """The consortium key ring: every site's public key with the site's roles."""
    ring = KeyRing()
    for signer in signers.values():
        ring.add(signer.site_id, signer.public_key, SITE_ROLES[signer.site_id])
    return ring
