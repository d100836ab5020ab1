"""Value objects of the logistics domain: parties, units, statuses, readings, overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_platform.limits import MAX_ID_CHARS, echo

SITE_PREFIX = "site:"
COURIER_PREFIX = "courier:"
COURIER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SITE_ID_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")
E = TypeVar("E", bound=StrEnum)


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


def site_party(site_id: str) -> str:
    return f"{SITE_PREFIX}{site_id}"


def courier_party(courier_id: str) -> str:
    return f"{COURIER_PREFIX}{courier_id}"


def parse_party(text: str) -> str:
    """`site:<SITE_ID>` or `courier:<COURIER_ID>`, exactly."""
    value = text.strip()
    if value.startswith(SITE_PREFIX) and SITE_ID_PATTERN.fullmatch(value[len(SITE_PREFIX) :]):
        return value
    if value.startswith(COURIER_PREFIX) and COURIER_ID_PATTERN.fullmatch(
        value[len(COURIER_PREFIX) :]
    ):
        return value
    shown = echo(text, MAX_ID_CHARS)
    raise InvalidInput(f"party {shown!r} must be 'site:<SITE_ID>' or 'courier:<COURIER_ID>'")


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
