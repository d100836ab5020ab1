"""Value objects of the logistics domain: parties, units, statuses, readings, overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from v2v_platform.auth.identity import Role
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_platform.limits import MAX_ID_CHARS, echo

SITE_PREFIX = "site:"
COURIER_PREFIX = "courier:"
DEPARTMENT_SEPARATOR = "/"
COURIER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SITE_ID_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")
E = TypeVar("E", bound=StrEnum)


class Department(StrEnum):
    """A department of a site, a custody party of its own (`site:<SITE_ID>/<department>`):
    it acts with its site's credentials, in the role it stands for, and its site is the party
    authorization knows (an in-house hospital's collection, GMP, QC and ward)."""

    COLLECTION = "collection"
    GMP = "gmp"
    QC = "qc"
    WARD = "ward"

    @property
    def role(self) -> Role:
        """The role the department stands for: its site acts for it only in that role."""
        return _DEPARTMENT_ROLES[self]


_DEPARTMENT_ROLES = {
    Department.COLLECTION: Role.COLLECTION,
    Department.GMP: Role.MANUFACTURING,
    Department.QC: Role.QC,
    Department.WARD: Role.INFUSION,
}
DEPARTMENT_NAMES = ", ".join(department.value for department in Department)
SITE_PARTY_PATTERN = re.compile(
    rf"{SITE_PREFIX}(?P<site>{SITE_ID_PATTERN.pattern})"
    rf"(?:{DEPARTMENT_SEPARATOR}(?P<department>{'|'.join(d.value for d in Department)}))?"
)
"""`site:<SITE_ID>` or `site:<SITE_ID>/<department>`: at most 5 + 32 + 1 + 10 characters."""


class ShipmentStatus(StrEnum):
    CREATED = "created"
    PICKED_UP = "picked-up"
    IN_TRANSIT = "in-transit"
    DELIVERED = "delivered"
    RECEIPT_INSPECTED = "receipt-inspected"
    EXCEPTION = "exception"

    @property
    def is_moving(self) -> bool:
        """Custody may still pass between couriers (before delivery or exception)."""
        return self in (ShipmentStatus.CREATED, ShipmentStatus.PICKED_UP, ShipmentStatus.IN_TRANSIT)

    @property
    def is_closed(self) -> bool:
        return self in (ShipmentStatus.RECEIPT_INSPECTED, ShipmentStatus.EXCEPTION)


class ExceptionKind(StrEnum):
    DAMAGED = "damaged"
    LOST = "lost"
    DELAYED = "delayed"


class UnitKind(StrEnum):
    APHERESIS = "apheresis"
    PRODUCT = "product"


def parse_enum(kind: type[E], text: str, what: str) -> E:
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidInput(f"{what} {echo(text, MAX_ID_CHARS)!r} is not one of {allowed}") from None


def parse_condition(text: str) -> Condition:
    return parse_enum(Condition, text, "condition")


def site_party(site_id: str, department: str = "") -> str:
    """`site:<SITE_ID>`, or `site:<SITE_ID>/<department>` for one of its departments."""
    if department:
        return f"{SITE_PREFIX}{site_id}{DEPARTMENT_SEPARATOR}{department}"
    return f"{SITE_PREFIX}{site_id}"


def site_of(party: str) -> str:
    """The site a site party (or one of its departments) belongs to; "" for a courier."""
    if not party.startswith(SITE_PREFIX):
        return ""
    return party[len(SITE_PREFIX) :].split(DEPARTMENT_SEPARATOR, 1)[0]


def department_of(party: str) -> str:
    """The department a party names ("" for a site as a whole or a courier)."""
    if not party.startswith(SITE_PREFIX):
        return ""
    return party.partition(DEPARTMENT_SEPARATOR)[2]


def parse_department(text: str) -> str:
    """A department's name, or "" for the site as a whole (an empty text)."""
    if not text:
        return ""
    try:
        return Department(text).value
    except ValueError:
        shown = echo(text, MAX_ID_CHARS)
        raise InvalidInput(f"department {shown!r} is not one of {DEPARTMENT_NAMES}") from None


def courier_party(courier_id: str) -> str:
    return f"{COURIER_PREFIX}{courier_id}"


def parse_party(text: str) -> str:
    """`site:<SITE_ID>`, `site:<SITE_ID>/<department>` or `courier:<COURIER_ID>`, exactly."""
    value = text.strip()
    if SITE_PARTY_PATTERN.fullmatch(value):
        return value
    if value.startswith(COURIER_PREFIX) and COURIER_ID_PATTERN.fullmatch(
        value[len(COURIER_PREFIX) :]
    ):
        return value
    shown = echo(text, MAX_ID_CHARS)
    raise InvalidInput(
        f"party {shown!r} must be 'site:<SITE_ID>', 'site:<SITE_ID>/<department>'"
        f" ({DEPARTMENT_NAMES}) or 'courier:<COURIER_ID>'"
    )


def parse_courier_id(text: str) -> str:
    if COURIER_ID_PATTERN.fullmatch(text) is None:
        shown = echo(text, MAX_ID_CHARS)
        raise InvalidInput(f"courier id {shown!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return text


def parse_site(text: str, what: str = "site id") -> str:
    if SITE_ID_PATTERN.fullmatch(text) is None:
        raise InvalidInput(f"{what} {echo(text, MAX_ID_CHARS)!r} is not a site id (A-Z, 0-9, '-')")
    return text


def require_text(name: str, value: str) -> str:
    if not value.strip():
        raise InvalidInput(f"{name} is required")
    return value.strip()


def require_zone(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput(f"{what} must carry a time zone")
    return moment


@dataclass(frozen=True)
class KnownUnit:
    """A unit learned from another context's events: its COI, condition, window and the site
    that held it when it was packaged or created (its first custodian)."""

    din: str
    coi: str
    kind: UnitKind
    condition: Condition
    window_starts_at: datetime
    first_custodian: str

    @property
    def din_data(self) -> str:
        return self.din[:13]


@dataclass(frozen=True)
class Reading:
    """One data-logger reading."""

    measured_at: datetime
    temperature_c: float
    device_id: str

    def __post_init__(self) -> None:
        require_zone(self.measured_at, "reading time")
        require_text("device id", self.device_id)


@dataclass(frozen=True)
class ScanAttempt:
    """A courier's (or site's) scan as the device recorded it."""

    idempotency_key: str
    scanned_at: datetime
    from_party: str
    receiving_party: str
    label: str = ""

    def __post_init__(self) -> None:
        require_text("idempotency key", self.idempotency_key)
        require_zone(self.scanned_at, "scanned_at")
