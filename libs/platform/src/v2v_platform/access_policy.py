"""Who may call a method or route: the roles it needs AND the relationship it needs.

Every gRPC method and every HTTP route declares one `Access` next to its handler (the
services' `ACCESS` tables; routes carry it in their OpenAPI operation as `x-v2v-access`).
A role says what kind of site may call; the `Relation` says which of those sites, given the
records the call touches, as verified facts relate them (never a request field):

- `OWN_SITE`: the site this service records for (a site's own ward, lab, calendar...).
  Another site is refused (PERMISSION_DENIED / 403) whatever its roles.
- `PATIENT`: a site that verified facts relate to the call's COI: the enrolling / treating
  site, the GMP site a slot was booked at, the QC site of its batch, the origin,
  destination and courier of one of its shipments. Anyone else: NOT_FOUND / 404, as if the
  COI did not exist (no oracle for guessed, sequential COIs).
- `SHIPMENT`: a party to the call's shipment: origin, destination, or its assigned courier.
  Anyone else: NOT_FOUND / 404.
- `FILTERED`: a listing any site with the role may ask for; the answer holds only what the
  caller is related to (a calendar shows capacity and the caller's own bookings).
- `NO_PATIENT_DATA`: the answer holds no patient's records (e.g. the QC specifications).

Auditors read everything (`Scope.reads_all`) and write nothing (no write role).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from v2v_platform.auth.identity import Role

EXTENSION = "x-v2v-access"
"""The OpenAPI operation extension that carries a route's declared access."""


class Relation(StrEnum):
    OWN_SITE = "own-site"
    PATIENT = "patient"
    SHIPMENT = "shipment"
    FILTERED = "filtered"
    NO_PATIENT_DATA = "no-patient-data"


@dataclass(frozen=True)
class Access:
    roles: frozenset[Role]
    relation: Relation
    writes: bool

    def openapi(self) -> dict[str, Any]:
        """`openapi_extra` of the route that declares this access."""
        return {
            EXTENSION: {
                "roles": sorted(role.value for role in self.roles),
                "relation": self.relation.value,
                "writes": self.writes,
            }
        }

    @classmethod
    def from_openapi(cls, operation: dict[str, Any]) -> Access | None:
        declared = operation.get(EXTENSION)
        if declared is None:
            return None
        return cls(
            frozenset(Role(r) for r in declared["roles"]),
            Relation(declared["relation"]),
            bool(declared["writes"]),
        )


def writes(relation: Relation, *roles: Role) -> Access:
    return Access(frozenset(roles), relation, writes=True)


def reads(relation: Relation, *roles: Role) -> Access:
    return Access(frozenset(roles), relation, writes=False)


def required_roles(service: str, table: dict[str, Access]) -> dict[str, frozenset[Role]]:
    """The gRPC interceptor's map (full method name -> roles) from a service's `ACCESS`."""
    return {f"/{service}/{method}": access.roles for method, access in table.items()}


def role_names(roles: Iterable[Role]) -> str:
    return ", ".join(sorted(role.value for role in roles))
